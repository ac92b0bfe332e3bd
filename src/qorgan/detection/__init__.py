"""Detection: Sigma rules compiled into one shared plan and evaluated over event batches."""
