//! CDEvents carried as CloudEvents.
