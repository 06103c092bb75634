//! ff-backend-sqlite
