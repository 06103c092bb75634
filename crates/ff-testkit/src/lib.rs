//! ff-testkit
