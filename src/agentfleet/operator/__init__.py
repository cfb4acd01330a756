"""The Kubernetes operator: runs batches as Pods; the pure builders of what it creates."""
