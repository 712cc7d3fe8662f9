//! Each upload's turn for disk work that must not overlap, kept past the request that took it.

use std::collections::HashMap;
use std::sync::Arc;

use tus_core::UploadId;

/// The turns of the uploads with disk work under way or waiting.
#[derive(Debug, Default)]
pub(crate) struct Turns(std::sync::Mutex<HashMap<UploadId, Arc<TurnSlot>>>);

/// One upload's entry in [`Turns`].
#[derive(Debug, Default)]
pub(crate) struct TurnSlot {
    mutex: Arc<tokio::sync::Mutex<()>>,
    /// The holder's request is gone but its disk work is not done yet.
    abandoned: std::sync::atomic::AtomicBool,
}

/// An upload's turn for disk work that must not overlap. The handler's upload lock ends with
/// the request, but an append's blocking work cannot be stopped when its request is dropped
/// (an HTTP/2 stream reset, a timeout layer): the next append or termination of the upload
/// waits for that work here instead of racing it (a retry's marker removed by the old
/// append's cleanup, or its bytes cut off by the old truncation). Reading the info waits for
/// it too while it is abandoned: the lock was free again before those bytes landed, so a HEAD
/// would otherwise report an offset the upload is about to outgrow.
pub(crate) struct Turn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    pub(crate) slot: Arc<TurnSlot>,
    id: UploadId,
    turns: Arc<Turns>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.slot.abandoned.store(false, std::sync::atomic::Ordering::Release);
        drop(self.guard.take());
        // Forget the upload's slot once nobody else holds or waits for it.
        if let Ok(mut turns) = self.turns.0.lock()
            && turns.get(&self.id).is_some_and(|slot| Arc::strong_count(slot) == 2)
        {
            turns.remove(&self.id);
        }
    }
}

/// Marks the turn abandoned if the append holding it is dropped while its disk work (which
/// has the turn) still runs; an append that finishes has released the turn by then.
pub(crate) struct AbandonOnDrop(pub(crate) std::sync::Weak<TurnSlot>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.0.upgrade()
            && slot.mutex.try_lock().is_err()
        {
            slot.abandoned.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Turns {
    /// Waits for the upload's turn (see [`Turn`]).
    pub(crate) async fn turn(self: &Arc<Self>, id: &UploadId) -> Turn {
        let slot: Arc<TurnSlot> = match self.0.lock() {
            Ok(mut turns) => turns.entry(id.clone()).or_default().clone(),
            // A panic while the map was held: go on with a slot of our own.
            Err(_) => Arc::default(),
        };
        let guard = slot.mutex.clone().lock_owned().await;
        Turn { guard: Some(guard), slot, id: id.clone(), turns: self.clone() }
    }

    /// Waits for disk work of an abandoned append of `id`, if there is any.
    pub(crate) async fn settle_abandoned(&self, id: &UploadId) {
        let abandoned = self.0.lock().ok().and_then(|turns| {
            turns.get(id).filter(|slot| slot.abandoned.load(std::sync::atomic::Ordering::Acquire)).cloned()
        });
        if let Some(slot) = abandoned {
            drop(slot.mutex.lock().await);
            if let Ok(mut turns) = self.0.lock()
                && turns.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot) && Arc::strong_count(s) == 2)
            {
                turns.remove(id);
            }
        }
    }
}
