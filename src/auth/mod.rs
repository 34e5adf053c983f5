//! Authentication and authorisation: password file, ACL.
