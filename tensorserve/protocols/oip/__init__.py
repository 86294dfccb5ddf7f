"""The Open Inference Protocol (KServe V2), shared by its REST and gRPC adapters."""
