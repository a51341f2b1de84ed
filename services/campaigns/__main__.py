from shared.serve import serve

if __name__ == "__main__":
    serve("services.campaigns.main:create_app", default_port=8003)
