"""SAM's own emulators (`sam local start-lambda`, `start-api`) running the build against the local stack
(`emulators`), and the arm64 Lambda image they run it in (`image`, `make sam-image`)."""
