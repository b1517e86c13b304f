//! Destinations and the deliverers that drain their outboxes.

pub mod folder;
