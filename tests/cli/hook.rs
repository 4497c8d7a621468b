//! Tests of `hook`; filled in with the feature.
