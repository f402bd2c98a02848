//! [`TopK`]: the `count` best candidates of a pick call, kept in one pass over the customers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Keeps the `k` greatest of the items offered: O(1) per item that does not make the cut (one
/// comparison with the least kept), O(log k) per item that does. Memory O(min(k, items)).
///
/// A pick loop whose keys only get worse as a candidate is served (every algorithm here) makes its
/// first `k` picks among the `k` best initial keys, so it can start from these instead of a heap
/// over every customer.
pub(crate) struct TopK<T: Ord> {
    k: usize,
    kept: Vec<T>,
    heap: Option<BinaryHeap<Reverse<T>>>,
}

impl<T: Ord> TopK<T> {
    #[inline]
    pub(crate) fn new(k: usize) -> Self {
        Self { k, kept: Vec::new(), heap: None }
    }

    #[inline]
    pub(crate) fn offer(&mut self, x: T) {
        if let Some(heap) = &mut self.heap {
            if let Some(mut least) = heap.peek_mut() {
                if x > least.0 {
                    *least = Reverse(x);
                }
            }
        } else if self.kept.len() < self.k {
            self.kept.push(x);
        } else {
            let mut heap: BinaryHeap<Reverse<T>> = std::mem::take(&mut self.kept).into_iter().map(Reverse).collect();
            if let Some(mut least) = heap.peek_mut() {
                if x > least.0 {
                    *least = Reverse(x);
                }
            }
            self.heap = Some(heap);
        }
    }

    /// The least item kept once `k` are kept (an item not greater cannot make the cut), else `None`.
    #[inline]
    pub(crate) fn cutoff(&self) -> Option<&T> {
        match &self.heap {
            Some(heap) => heap.peek().map(|least| &least.0),
            None => None,
        }
    }

    /// The kept items, in no particular order.
    #[inline]
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self.heap {
            Some(heap) => heap.into_iter().map(|Reverse(x)| x).collect(),
            None => self.kept,
        }
    }
}
