"""The mlprobe demo: a scikit-learn model behind FastAPI, and traffic that drifts."""
