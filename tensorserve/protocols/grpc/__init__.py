"""protocols/grpc."""
