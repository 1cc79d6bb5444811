"""The bundled RAP-SR fine-tuning (RPR + ROPO) and identifier-guided inference."""
