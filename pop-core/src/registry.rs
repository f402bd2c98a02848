//! The handler registry: operation type → handler spec (process command or Pod config), with the original `registry.json` base-config layering.
