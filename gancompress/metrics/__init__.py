"""Metrics: FID/KID (torch-fidelity), LPIPS (lpips), cost (params, MACs), latency."""
