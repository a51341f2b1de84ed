from shared.serve import serve

if __name__ == "__main__":
    serve("services.diagnosis.main:create_app", default_port=8002)
