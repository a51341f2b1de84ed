from shared.serve import serve

if __name__ == "__main__":
    serve("services.content.main:create_app", default_port=8004)
