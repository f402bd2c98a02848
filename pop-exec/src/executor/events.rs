//! The event streams of the launched attempts of one run, polled only when woken.
//!
//! `futures_util`'s `SelectAll` re-queues a stream (a new task allocation) for every item it yields, and the
//! executor used to wrap each stream in three adapters (catch-unwind, map, chain). Here every stream gets one
//! waker, allocated once, that puts its slot on a shared ready list; a woken stream is drained of everything
//! it has ready in one go. A stream that panics yields [`Item::Panicked`] and is dropped; one that ends
//! yields [`Item::End`]; one that reports its exit is dropped after it (an exit is a stream's last event:
//! the executor ignores whatever a stream would report after it).

use super::{Item, panic_text};
use crate::machine::AttemptKey;
use futures_util::task::AtomicWaker;
use pop_core::runtime::{EventStream, RuntimeEvent};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// The slots woken since the last poll, and the waker of the task that polls the set.
#[derive(Default)]
struct Shared {
    ready: Mutex<Vec<usize>>,
    waker: AtomicWaker,
}

/// The waker of one slot.
struct SlotWaker {
    slot: usize,
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            match self.shared.ready.lock() {
                Ok(mut r) => r.push(self.slot),
                Err(poisoned) => poisoned.into_inner().push(self.slot),
            }
            self.shared.waker.wake();
        }
    }
}

struct Slot {
    key: AttemptKey,
    stream: EventStream,
}

/// The waker of a slot, made once and kept for the streams that use the slot after it (a late wake-up
/// from a stream that has ended only makes the slot's next stream be polled once for nothing).
struct SlotWake {
    flag: Arc<SlotWaker>,
    waker: Waker,
}

/// A set of event streams, each tagged with its attempt.
pub(super) struct EventSet {
    slots: Vec<Option<Slot>>,
    /// The waker of each slot, by the same index.
    wakers: Vec<SlotWake>,
    free: Vec<usize>,
    len: usize,
    shared: Arc<Shared>,
    /// Slots to poll, taken from the shared list (kept across polls when the batch budget runs out).
    todo: Vec<usize>,
    /// The buffer handed out by [`EventSet::poll_batch`], given back by [`EventSet::recycle`].
    spare: Vec<(AttemptKey, Item)>,
}

impl EventSet {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            wakers: Vec::new(),
            free: Vec::new(),
            len: 0,
            shared: Arc::default(),
            todo: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Whether no stream is followed.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Follows `stream`; it is polled at the next [`EventSet::poll_batch`].
    pub(super) fn push(&mut self, key: AttemptKey, stream: EventStream) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.wakers[s].flag.queued.store(true, Ordering::Release);
                s
            }
            None => {
                let slot = self.slots.len();
                let flag = Arc::new(SlotWaker { slot, queued: AtomicBool::new(true), shared: self.shared.clone() });
                let waker = Waker::from(flag.clone());
                self.slots.push(None);
                self.wakers.push(SlotWake { flag, waker });
                slot
            }
        };
        self.slots[slot] = Some(Slot { key, stream });
        self.len += 1;
        self.todo.push(slot);
    }

    /// Gives back a buffer returned by [`EventSet::poll_batch`] (emptied) for reuse.
    pub(super) fn recycle(&mut self, mut buf: Vec<(AttemptKey, Item)>) {
        buf.clear();
        if buf.capacity() > self.spare.capacity() {
            self.spare = buf;
        }
    }

    /// Up to `max` items from the streams that were woken, or `Pending` (the task is woken when a stream is).
    pub(super) fn poll_batch(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Vec<(AttemptKey, Item)>> {
        self.shared.waker.register(cx.waker());
        {
            let mut ready = match self.shared.ready.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            self.todo.append(&mut ready);
        }
        let mut out = std::mem::take(&mut self.spare);
        // Each slot is polled at most once per call (a stream that wakes itself while polled, e.g. when
        // tokio's budget runs out, is polled at the next call, not in a loop here).
        let todo = std::mem::take(&mut self.todo);
        let mut rest = todo.into_iter();
        for slot in rest.by_ref() {
            if out.len() >= max {
                self.todo.push(slot);
                break;
            }
            self.drain(slot, &mut out, max);
        }
        self.todo.extend(rest);
        if out.is_empty() {
            self.spare = out;
            Poll::Pending
        } else {
            Poll::Ready(out)
        }
    }

    /// Takes what slot `slot`'s stream has ready (up to the budget).
    fn drain(&mut self, slot: usize, out: &mut Vec<(AttemptKey, Item)>, max: usize) {
        let Some(Some(s)) = self.slots.get_mut(slot) else { return };
        let wake = &self.wakers[slot];
        wake.flag.queued.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&wake.waker);
        loop {
            if out.len() >= max {
                // Budget spent: come back to this stream at the next call.
                if !wake.flag.queued.swap(true, Ordering::AcqRel) {
                    self.todo.push(slot);
                }
                return;
            }
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| s.stream.as_mut().poll_next(&mut cx)));
            match polled {
                Ok(Poll::Pending) => return,
                Ok(Poll::Ready(Some(event))) => {
                    let exited = matches!(event, RuntimeEvent::Exited(_));
                    out.push((s.key, Item::Event(event)));
                    if exited {
                        break;
                    }
                }
                Ok(Poll::Ready(None)) => {
                    out.push((s.key, Item::End));
                    break;
                }
                Err(p) => {
                    out.push((s.key, Item::Panicked(panic_text(&*p))));
                    break;
                }
            }
        }
        // The stream exited, ended or panicked: free the slot.
        self.slots[slot] = None;
        self.free.push(slot);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::OpId;
    use pop_core::runtime::Exit;
    use std::sync::atomic::AtomicUsize;

    fn key(op: usize) -> AttemptKey {
        AttemptKey { op: OpId(op), attempt: 1 }
    }

    /// Counts how often the polling task is woken.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(set: &mut EventSet, waker: &Waker, max: usize) -> Vec<(AttemptKey, String)> {
        let mut cx = Context::from_waker(waker);
        match set.poll_batch(&mut cx, max) {
            Poll::Pending => Vec::new(),
            Poll::Ready(items) => items
                .into_iter()
                .map(|(k, item)| {
                    let text = match item {
                        Item::Event(e) => format!("{e:?}"),
                        Item::Panicked(p) => format!("panicked: {p}"),
                        Item::End => "end".to_owned(),
                    };
                    (k, text)
                })
                .collect(),
        }
    }

    #[test]
    fn streams_are_drained_when_woken_and_end_or_panic_once() {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut set = EventSet::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<RuntimeEvent>();
        let later = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        set.push(key(0), Box::pin(later));
        set.push(key(1), Box::pin(futures_util::stream::iter(vec![RuntimeEvent::Started, RuntimeEvent::Started])));
        let mut n = 0;
        let boom = futures_util::stream::poll_fn(move |_| {
            n += 1;
            if n == 2 {
                panic!("stream bug");
            }
            Poll::Ready(Some(RuntimeEvent::Started))
        });
        set.push(key(2), Box::pin(boom));
        let mut got = poll(&mut set, &waker, 100);
        got.sort();
        assert_eq!(
            got,
            vec![
                (key(1), "Started".to_owned()),
                (key(1), "Started".to_owned()),
                (key(1), "end".to_owned()),
                (key(2), "Started".to_owned()),
                (key(2), "panicked: stream bug".to_owned()),
            ]
        );
        assert!(!set.is_empty(), "stream 0 still runs");
        // Nothing is ready: pending, and nothing is polled again.
        assert!(poll(&mut set, &waker, 100).is_empty());
        let wakes = counter.0.load(Ordering::SeqCst);
        tx.send(RuntimeEvent::Started).unwrap();
        assert!(counter.0.load(Ordering::SeqCst) > wakes, "a send wakes the polling task");
        assert_eq!(poll(&mut set, &waker, 100), vec![(key(0), "Started".to_owned())]);
        drop(tx);
        assert_eq!(poll(&mut set, &waker, 100), vec![(key(0), "end".to_owned())]);
        assert!(set.is_empty());
        // Freed slots are reused.
        set.push(key(3), Box::pin(futures_util::stream::iter(vec![RuntimeEvent::Started])));
        assert_eq!(set.slots.len(), 3);
    }

    #[test]
    fn a_stream_is_dropped_after_its_exit() {
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut set = EventSet::new();
        let events = vec![RuntimeEvent::Started, RuntimeEvent::Exited(Exit::success()), RuntimeEvent::Started];
        set.push(key(0), Box::pin(futures_util::stream::iter(events)));
        let got: Vec<String> = poll(&mut set, &waker, 100).into_iter().map(|(_, t)| t).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].starts_with("Exited"), "{got:?}");
        assert!(set.is_empty(), "nothing is read after the exit, and no end is reported");
    }

    #[test]
    fn the_budget_leaves_the_rest_for_the_next_poll() {
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut set = EventSet::new();
        for op in 0..3 {
            set.push(key(op), Box::pin(futures_util::stream::iter(vec![RuntimeEvent::Started; 4])));
        }
        let mut all = Vec::new();
        for _ in 0..10 {
            let batch = poll(&mut set, &waker, 5);
            assert!(batch.len() <= 5);
            all.extend(batch);
        }
        assert_eq!(all.len(), 15, "3 streams × (4 events + end)");
        assert!(set.is_empty());
        for op in 0..3 {
            let mine: Vec<&String> = all.iter().filter(|(k, _)| *k == key(op)).map(|(_, t)| t).collect();
            assert_eq!(mine.last().map(|s| s.as_str()), Some("end"), "in order, end last");
        }
    }
}
