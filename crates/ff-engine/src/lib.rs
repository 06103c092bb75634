//! ff-engine
