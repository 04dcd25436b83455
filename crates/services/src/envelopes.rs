//! Red envelopes, pure: how a total is split into packets, and an envelope's grabs as a state
//! machine (`Book::grab`, `Book::close`). No clock, no randomness of its own: the random source
//! and the time are arguments.
//!
//! A lucky envelope is split by the "double mean" method: each packet is drawn uniformly from
//! 1 minor unit to twice the mean of what is left (`2 × remaining ÷ packets left`), the last
//! packet takes the rest. The bounds are narrowed only as far as needed to keep every later
//! packet at 1 minor unit or more and at most the per-packet maximum.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use store::{Envelope, EnvelopeState};

/// A uniform draw from `low..=high` using `random` (64 random bits per call), without modulo
/// bias (rejection sampling).
pub fn uniform(low: u64, high: u64, random: &mut impl FnMut() -> u64) -> u64 {
    assert!(low <= high);
    let span = high - low + 1;
    if span == 0 {
        // The whole u64 range.
        return random();
    }
    // The largest multiple of `span` that fits, so every residue is equally likely.
    let zone = u64::MAX - (u64::MAX % span + 1) % span;
    loop {
        let value = random();
        if value <= zone {
            return low + value % span;
        }
    }
}

/// Splits `total` into `count` random packets by the double-mean method, each from 1 to
/// `packet_max`. Requires `count ≤ total ≤ count × packet_max`.
pub fn split_lucky(
    total: u64,
    count: usize,
    packet_max: u64,
    random: &mut impl FnMut() -> u64,
) -> Vec<u64> {
    assert!(count >= 1 && packet_max >= 1);
    let count_u64 = count as u64;
    assert!(count_u64 <= total && total <= count_u64.saturating_mul(packet_max));
    let mut packets = Vec::with_capacity(count);
    let mut remaining = total;
    for left in (1..=count_u64).rev() {
        if left == 1 {
            packets.push(remaining);
            break;
        }
        let double_mean = (2 * remaining / left).max(1);
        // Leave at least 1 for each later packet, and no more than they can hold.
        let high = double_mean.min(remaining - (left - 1)).min(packet_max);
        let low = remaining
            .saturating_sub((left - 1).saturating_mul(packet_max))
            .max(1);
        let amount = uniform(low, high.max(low), random);
        packets.push(amount);
        remaining -= amount;
    }
    debug_assert_eq!(packets.iter().sum::<u64>(), total);
    packets
}

/// Splits `each × count` into equal packets.
pub fn split_ordinary(each: u64, count: usize) -> Vec<u64> {
    vec![each; count]
}

/// The canonical text whose SHA-256 is registered in the trust log when an envelope is sent:
/// anyone shown the packets can check they were fixed before the first grab.
pub fn packets_commitment(envelope_id: u64, currency: &str, packets: &[u64]) -> String {
    format!(
        "tally-red-envelope-v1\n{envelope_id}\n{currency}\n{}\n",
        store::envelope_packets_text(packets)
    )
}

/// Why a grab was refused; the envelope is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrabRefusal {
    #[error("this red envelope was not sent to you")]
    NotInvited,
    #[error("you grabbed packet {packet} of this red envelope already")]
    AlreadyGrabbed { packet: usize, amount: u64 },
    #[error("every packet of this red envelope has been grabbed")]
    Empty,
    #[error("this red envelope has expired")]
    Expired,
}

/// An envelope and who grabbed each packet, as the service keeps it in memory.
#[derive(Debug, Clone)]
pub struct Book {
    pub envelope: Envelope,
    /// The group's members when it was loaded (`None` for an envelope to one friend).
    members: Option<Arc<HashSet<u64>>>,
    /// The grabber of each packet.
    grabbed: Vec<Option<u64>>,
    by_user: HashMap<u64, usize>,
    /// The first packet not grabbed.
    next: usize,
    /// Grabs handed out whose transfers are not yet known to be committed.
    pub in_flight: usize,
}

impl Book {
    /// A book for `envelope`, with the packets already grabbed (packet index, grabber).
    pub fn new(
        envelope: Envelope,
        members: Option<Arc<HashSet<u64>>>,
        grabs: impl IntoIterator<Item = (usize, u64)>,
    ) -> Book {
        let mut grabbed = vec![None; envelope.packets.len()];
        let mut by_user = HashMap::new();
        for (packet, user) in grabs {
            if packet < grabbed.len() {
                grabbed[packet] = Some(user);
                by_user.insert(user, packet);
            }
        }
        let next = grabbed
            .iter()
            .position(Option::is_none)
            .unwrap_or(grabbed.len());
        Book {
            envelope,
            members,
            grabbed,
            by_user,
            next,
            in_flight: 0,
        }
    }

    pub fn may_see(&self, user_id: u64) -> bool {
        user_id == self.envelope.sender_user_id || self.invited(user_id)
    }

    fn invited(&self, user_id: u64) -> bool {
        match (&self.members, self.envelope.recipient_user_id) {
            (_, Some(recipient)) => recipient == user_id,
            (Some(members), None) => members.contains(&user_id),
            (None, None) => false,
        }
    }

    /// Hands the next packet to `user_id` at `now`: its index. Packets go out in arrival order.
    pub fn grab(&mut self, user_id: u64, now: u64) -> Result<usize, GrabRefusal> {
        if !self.invited(user_id) {
            return Err(GrabRefusal::NotInvited);
        }
        if let Some(&packet) = self.by_user.get(&user_id) {
            return Err(GrabRefusal::AlreadyGrabbed {
                packet,
                amount: self.envelope.packets[packet],
            });
        }
        if self.envelope.state == EnvelopeState::Expired || now >= self.envelope.expires_at {
            return Err(GrabRefusal::Expired);
        }
        if self.next >= self.grabbed.len() {
            return Err(GrabRefusal::Empty);
        }
        let packet = self.next;
        self.grabbed[packet] = Some(user_id);
        self.by_user.insert(user_id, packet);
        self.next = self.grabbed[packet..]
            .iter()
            .position(Option::is_none)
            .map_or(self.grabbed.len(), |offset| packet + offset);
        self.in_flight += 1;
        Ok(packet)
    }

    /// Whether `packet` was the last one left when it was handed out.
    pub fn is_last(&self) -> bool {
        self.next >= self.grabbed.len()
    }

    /// The packets and their grabbers, in order.
    pub fn grabs(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.grabbed
            .iter()
            .enumerate()
            .filter_map(|(packet, user)| {
                user.map(|user| (packet, user, self.envelope.packets[packet]))
            })
    }

    /// What nobody grabbed.
    pub fn remaining(&self) -> u64 {
        self.grabbed
            .iter()
            .zip(&self.envelope.packets)
            .filter(|(user, _)| user.is_none())
            .map(|(_, amount)| amount)
            .sum()
    }

    /// Closes an open envelope whose expiry has passed: the envelope as it is then, with what
    /// goes back to the sender. `None` if it is not due, not open, or grabs are still in flight.
    pub fn close(&self, now: u64) -> Option<Envelope> {
        if self.envelope.state != EnvelopeState::Open
            || now < self.envelope.expires_at
            || self.in_flight > 0
        {
            return None;
        }
        let returned = self.remaining();
        Some(Envelope {
            state: if returned == 0 {
                EnvelopeState::Finished
            } else {
                EnvelopeState::Expired
            },
            returned,
            closed_at: Some(now),
            ..self.envelope.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::EnvelopeKind;

    /// A small deterministic generator for tests (xorshift64*).
    fn generator(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn lucky_packets_are_positive_bounded_and_sum_to_the_total() {
        let mut random = generator(7);
        for (total, count, packet_max) in [
            (100, 100, 20_000),
            (101, 100, 20_000),
            (10_000, 10, 20_000),
            (1_999_999, 100, 20_000),
            (2_000_000, 100, 20_000),
            (3, 3, 1),
            (7, 1, 7),
            (5_000, 7, 1_000),
        ] {
            for _ in 0..200 {
                let packets = split_lucky(total, count, packet_max, &mut random);
                assert_eq!(packets.len(), count);
                assert_eq!(packets.iter().sum::<u64>(), total);
                assert!(packets
                    .iter()
                    .all(|&amount| (1..=packet_max).contains(&amount)));
            }
        }
    }

    #[test]
    fn lucky_packets_vary_and_average_the_mean() {
        let mut random = generator(11);
        let mut first_packets = Vec::new();
        for _ in 0..2_000 {
            first_packets.push(split_lucky(10_000, 10, 20_000, &mut random)[0]);
        }
        let mean = first_packets.iter().sum::<u64>() / first_packets.len() as u64;
        // Uniform on 1..=2000: a mean near 1000.
        assert!((900..1100).contains(&mean), "{mean}");
        assert!(first_packets.iter().any(|&amount| amount < 200));
        assert!(first_packets.iter().any(|&amount| amount > 1800));
    }

    #[test]
    fn uniform_draws_cover_the_range_without_leaving_it() {
        let mut random = generator(3);
        let mut seen = [false; 6];
        for _ in 0..1_000 {
            let value = uniform(5, 10, &mut random);
            seen[(value - 5) as usize] = true;
        }
        assert!(seen.iter().all(|&hit| hit));
        assert_eq!(uniform(9, 9, &mut random), 9);
    }

    fn envelope(packets: Vec<u64>) -> Envelope {
        Envelope {
            id: 1,
            sender_user_id: 100,
            group_id: Some(5),
            recipient_user_id: None,
            kind: EnvelopeKind::Lucky,
            total: packets.iter().sum(),
            currency: "CNY".into(),
            packets,
            greeting: String::new(),
            registration_id: 1,
            state: EnvelopeState::Open,
            created_at: 0,
            expires_at: 1_000,
            returned: 0,
            closed_at: None,
        }
    }

    #[test]
    fn grabs_go_in_arrival_order_once_per_member_until_empty() {
        let members: HashSet<u64> = [100, 101, 102, 103].into_iter().collect();
        let mut book = Book::new(envelope(vec![5, 3, 2]), Some(Arc::new(members)), []);
        assert_eq!(book.grab(101, 1), Ok(0));
        assert_eq!(
            book.grab(101, 2),
            Err(GrabRefusal::AlreadyGrabbed {
                packet: 0,
                amount: 5
            })
        );
        assert_eq!(book.grab(999, 2), Err(GrabRefusal::NotInvited));
        assert_eq!(book.grab(100, 3), Ok(1));
        assert!(!book.is_last());
        assert_eq!(book.grab(102, 4), Ok(2));
        assert!(book.is_last());
        assert_eq!(book.grab(103, 5), Err(GrabRefusal::Empty));
        assert_eq!(book.remaining(), 0);
        assert_eq!(
            book.grabs().collect::<Vec<_>>(),
            vec![(0, 101, 5), (1, 100, 3), (2, 102, 2)]
        );
    }

    #[test]
    fn an_expired_envelope_closes_once_with_the_rest_and_refuses_grabs() {
        let members: HashSet<u64> = [101, 102].into_iter().collect();
        let mut book = Book::new(envelope(vec![5, 3, 2]), Some(Arc::new(members)), [(0, 101)]);
        assert_eq!(book.close(999), None, "not due yet");
        assert_eq!(book.grab(102, 1_000), Err(GrabRefusal::Expired));
        book.in_flight = 1;
        assert_eq!(book.close(1_000), None, "a grab in flight");
        book.in_flight = 0;
        let closed = book.close(1_000).unwrap();
        assert_eq!(
            (closed.state, closed.returned, closed.closed_at),
            (EnvelopeState::Expired, 5, Some(1_000))
        );
        book.envelope = closed;
        assert_eq!(book.close(2_000), None, "closed once");
    }

    #[test]
    fn an_envelope_to_one_friend_is_for_that_friend_only() {
        let mut to_friend = envelope(vec![200]);
        to_friend.group_id = None;
        to_friend.recipient_user_id = Some(7);
        let mut book = Book::new(to_friend, None, []);
        assert_eq!(book.grab(100, 1), Err(GrabRefusal::NotInvited));
        assert!(book.may_see(100));
        assert_eq!(book.grab(7, 1), Ok(0));
    }
}
