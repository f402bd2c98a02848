//! The conformance suite every Store and QueueBackend runs.
