"""The OpenEnv server: ``app.py`` builds the FastAPI app around the environment class."""
