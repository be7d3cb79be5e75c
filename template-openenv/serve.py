"""Serve the environment over OpenEnv: ``python serve.py --host 127.0.0.1 --port 8000``."""

from server.app import main

if __name__ == "__main__":
    main()
