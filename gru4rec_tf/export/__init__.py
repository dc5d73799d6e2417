"""The TF Serving export: the serving contract (signatures) and the SavedModel writer."""
