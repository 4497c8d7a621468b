//! Tests of `launcher`; filled in with the feature.
