//! Tests of `resolve`; filled in with the feature.
