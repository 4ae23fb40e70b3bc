//! The one mutex-poison policy of every rustre process.
//!
//! A mutex is poisoned when a thread panicked while holding it. rustre takes the guard
//! anyway ([`lock`]): every lock in rustre guards state that is whole between statements
//! (maps, counters, queues, caches), a panic is already a reported bug, and refusing the lock
//! afterwards would turn one failed request into a server or a mount that fails every request
//! after it. Code that needs a lock calls [`lock`], never `Mutex::lock().unwrap()`.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the guard even if another thread panicked while holding it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_is_still_locked_with_its_value() {
        let m = std::sync::Arc::new(Mutex::new(7));
        let m2 = m.clone();
        let panicked = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(panicked.is_err());
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 8);
    }
}
