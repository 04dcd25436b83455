//! Red envelopes ("lucky money"): groups of users; envelopes sent to a group or to one friend,
//! paid from the sender's wallet into the red-envelope account in one transfer; packets fixed
//! when the envelope is sent (drawn from the operating system's randomness for a lucky one)
//! and their digest registered in the trust log before anyone can grab; grabs served in
//! arrival order, one per member, each a transfer from the red-envelope account to the
//! grabber; what is left when the envelope expires goes back to the sender, once.
//!
//! Grabbing is the hot path. An envelope's book (`envelopes::Book`) lives in memory behind a
//! short lock that only hands out the next packet; the grab's transfer then goes to the
//! sequencer as its own request, so the grabs of many users share each batch and the ledger
//! nets the red-envelope account once per batch. The ledger is the last guard: packet `k` of
//! envelope `e` is paid by transfer `transfer_id(e + 1 + k, 1)`, which can exist once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ledger::{Event, EventResult, NewTransfer};
use store::{
    Envelope, EnvelopeKind, EnvelopeState, Group, GroupMember, NewRegistration, Record,
    RegistrationKind, User, ENVELOPE_PACKETS_MAX, RECORD_TEXT_BYTES_MAX,
};

use super::{
    bounded_text, first_refusal, invalid, Idempotency, Outcome, PaymentError, Payments, Render,
    ENVELOPES_ACCOUNT_ID,
};
use crate::accounts::{TRANSFER_ENVELOPE, TRANSFER_ENVELOPE_GRAB, TRANSFER_ENVELOPE_RETURN};
use crate::envelopes::{self, Book, GrabRefusal};
use crate::ids::{new_id, new_ids, transfer_id};
use crate::secrets;
use crate::support::lock_key;

/// Red-envelope settings of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeConfig {
    /// Most packets one envelope may hold.
    pub packets_max: usize,
    /// Largest packet, in minor units (WeChat Pay's is 200 CNY).
    pub packet_max: u64,
    /// Largest envelope.
    pub envelope_max: u64,
    /// Seconds until what is left goes back to the sender.
    pub lifetime_s: u64,
    /// Most members of one group.
    pub group_members_max: usize,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            packets_max: 100,
            packet_max: 20_000,
            envelope_max: 2_000_000,
            lifetime_s: 24 * 3600,
            group_members_max: 500,
        }
    }
}

/// Books kept in memory at most; beyond, the oldest envelopes' books are dropped (and read
/// again from the store when someone grabs).
const BOOKS_CACHED_MAX: usize = 100_000;

/// Who receives an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    Group(u64),
    User(u64),
}

/// An envelope as the sender asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    pub to: Recipient,
    pub kind: EnvelopeKind,
    /// The total of a lucky envelope, or each packet's amount for an ordinary one.
    pub amount: u64,
    pub count: usize,
    pub greeting: String,
}

/// A grab that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grab {
    pub envelope_id: u64,
    pub packet: usize,
    pub amount: u64,
}

/// An envelope as its sender and recipients see it: the packets grabbed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeView {
    pub envelope: Envelope,
    /// (packet, grabber, amount), in packet order.
    pub grabs: Vec<(usize, u64, u64)>,
}

/// The books of the envelopes in use, and the members of their groups.
#[derive(Default)]
pub(super) struct Books {
    books: Mutex<HashMap<u64, Arc<Mutex<Book>>>>,
    members: Mutex<HashMap<u64, Arc<HashSet<u64>>>>,
}

/// The ledger transfer that pays packet `packet` of envelope `envelope_id`.
pub fn packet_transfer_id(envelope_id: u64, packet: usize) -> u128 {
    transfer_id(envelope_id + 1 + packet as u64, 1)
}

impl Payments {
    // ---- Groups ------------------------------------------------------------------------------

    fn check_users_exist(&self, ids: &[u64]) -> Result<(), PaymentError> {
        for &id in ids {
            self.handles
                .users(|users| users.user(id))?
                .ok_or(PaymentError::NotFound("user"))?;
        }
        Ok(())
    }

    /// Creates a group owned by `owner`, with `members` (the owner is one).
    pub async fn create_group(
        &self,
        owner: &User,
        name: &str,
        members: &[u64],
        now_s: u64,
    ) -> Result<(Group, Vec<GroupMember>), PaymentError> {
        bounded_text("name", name, RECORD_TEXT_BYTES_MAX)?;
        if name.trim().is_empty() {
            return Err(invalid("name", "required"));
        }
        let mut ids: Vec<u64> = members.iter().copied().chain([owner.id]).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > self.config.envelopes.group_members_max {
            return Err(invalid(
                "members",
                format!(
                    "at most {} members",
                    self.config.envelopes.group_members_max
                ),
            ));
        }
        self.check_users_exist(&ids)?;
        let group = Group {
            id: new_id(now_s * 1000)?,
            owner_user_id: owner.id,
            name: name.to_owned(),
            created_at: now_s,
        };
        let members: Vec<GroupMember> = ids
            .into_iter()
            .map(|user_id| GroupMember {
                group_id: group.id,
                user_id,
                joined_at: now_s,
            })
            .collect();
        let mut records = vec![Record::Group(group.clone())];
        records.extend(members.iter().cloned().map(Record::GroupMember));
        // A request carries a bounded number of records: the members go in several.
        let mut chunks = records.chunks(store::REQUEST_RECORDS_MAX);
        if let Some(first) = chunks.next() {
            self.commit(Vec::new(), first.to_vec()).await?;
        }
        for chunk in chunks {
            self.commit(Vec::new(), chunk.to_vec()).await?;
        }
        Ok((group, members))
    }

    /// Adds members to a group; only its owner may.
    pub async fn add_group_members(
        &self,
        owner: &User,
        group_id: u64,
        members: &[u64],
        now_s: u64,
    ) -> Result<Vec<GroupMember>, PaymentError> {
        let _guards = self.locks.lock(&[lock_key("group", group_id)]).await;
        let (group, current) = self.group(owner.id, group_id)?;
        if group.owner_user_id != owner.id {
            return Err(PaymentError::NotFound("group"));
        }
        let present: HashSet<u64> = current.iter().map(|member| member.user_id).collect();
        let mut new: Vec<u64> = members
            .iter()
            .copied()
            .filter(|id| !present.contains(id))
            .collect();
        new.sort_unstable();
        new.dedup();
        if present.len() + new.len() > self.config.envelopes.group_members_max {
            return Err(invalid(
                "members",
                format!(
                    "at most {} members",
                    self.config.envelopes.group_members_max
                ),
            ));
        }
        self.check_users_exist(&new)?;
        let added: Vec<GroupMember> = new
            .into_iter()
            .map(|user_id| GroupMember {
                group_id,
                user_id,
                joined_at: now_s,
            })
            .collect();
        for chunk in added.chunks(store::REQUEST_RECORDS_MAX) {
            self.commit(
                Vec::new(),
                chunk.iter().cloned().map(Record::GroupMember).collect(),
            )
            .await?;
        }
        // Envelopes of the group already in memory learn of them when next read.
        self.envelope_books
            .members
            .lock()
            .expect("members")
            .remove(&group_id);
        self.envelope_books
            .books
            .lock()
            .expect("books")
            .retain(|_, book| book.lock().expect("book").envelope.group_id != Some(group_id));
        Ok(added)
    }

    /// A group and its members, to one of them.
    pub fn group(
        &self,
        user_id: u64,
        group_id: u64,
    ) -> Result<(Group, Vec<GroupMember>), PaymentError> {
        let group = self
            .handles
            .records(|records| records.group(group_id))?
            .ok_or(PaymentError::NotFound("group"))?;
        let members = self
            .handles
            .records(|records| records.group_members(group_id))?;
        if !members.iter().any(|member| member.user_id == user_id) {
            return Err(PaymentError::NotFound("group"));
        }
        Ok((group, members))
    }

    /// The members of a group, from memory or the store.
    fn member_set(&self, group_id: u64) -> Result<Arc<HashSet<u64>>, PaymentError> {
        if let Some(members) = self
            .envelope_books
            .members
            .lock()
            .expect("members")
            .get(&group_id)
        {
            return Ok(members.clone());
        }
        let members: Arc<HashSet<u64>> = Arc::new(
            self.handles
                .records(|records| records.group_members(group_id))?
                .into_iter()
                .map(|member| member.user_id)
                .collect(),
        );
        if self.handles.store().shared() {
            // Other nodes add members too: the store is the only memory.
            return Ok(members);
        }
        let mut cached = self.envelope_books.members.lock().expect("members");
        if cached.len() >= BOOKS_CACHED_MAX {
            cached.clear();
        }
        Ok(cached.entry(group_id).or_insert(members).clone())
    }

    pub fn groups_of(&self, user_id: u64) -> Result<Vec<Group>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.groups_of_user(user_id))?)
    }

    // ---- Envelopes ---------------------------------------------------------------------------

    /// Sends a red envelope (the payment password checked by the caller): the packets are
    /// drawn, their digest registered in the trust log, then the total leaves the sender's
    /// wallet with the envelope's record, in one request.
    pub async fn send_envelope(
        &self,
        sender: &User,
        input: NewEnvelope,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Envelope>,
        now_s: u64,
    ) -> Result<Outcome<Envelope>, PaymentError> {
        let settings = self.config.envelopes;
        bounded_text("greeting", &input.greeting, RECORD_TEXT_BYTES_MAX)?;
        let packets_max = settings.packets_max.min(ENVELOPE_PACKETS_MAX);
        if input.count == 0 || input.count > packets_max {
            return Err(invalid("count", format!("1 to {packets_max} packets")));
        }
        let count = input.count as u64;
        let total = match input.kind {
            EnvelopeKind::Ordinary => {
                if input.amount == 0 || input.amount > settings.packet_max {
                    return Err(invalid(
                        "amount",
                        format!("each packet is 1 to {} minor units", settings.packet_max),
                    ));
                }
                input.amount * count
            }
            EnvelopeKind::Lucky => {
                if input.amount < count || input.amount > count.saturating_mul(settings.packet_max)
                {
                    return Err(invalid(
                        "amount",
                        format!(
                            "at least 1 minor unit and at most {} per packet",
                            settings.packet_max
                        ),
                    ));
                }
                input.amount
            }
        };
        if total > settings.envelope_max {
            return Err(invalid(
                "amount",
                format!(
                    "an envelope holds at most {} minor units",
                    settings.envelope_max
                ),
            ));
        }
        let (group_id, recipient_user_id) = match input.to {
            Recipient::Group(group_id) => {
                if !self.member_set(group_id)?.contains(&sender.id) {
                    return Err(PaymentError::NotFound("group"));
                }
                (Some(group_id), None)
            }
            Recipient::User(user_id) => {
                if user_id == sender.id {
                    return Err(PaymentError::SelfTransfer);
                }
                if input.count != 1 {
                    return Err(invalid("count", "an envelope to one friend has one packet"));
                }
                self.check_users_exist(&[user_id])?;
                (None, Some(user_id))
            }
        };
        let mut keys = vec![lock_key("user", sender.id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let spending = self.check_limits(sender, total, now_s)?;
        // Most refusals before anything reaches the trust log.
        let available = self
            .handles
            .ledger(|reader| reader.account(sender.wallet_account_id))?
            .map_or(0, |wallet| {
                wallet.credits_posted - wallet.debits_posted - wallet.debits_pending
            });
        if available < u128::from(total) {
            return Err(PaymentError::InsufficientFunds);
        }
        let id = new_ids(now_s * 1000, count + 1)?;
        let packets = match input.kind {
            EnvelopeKind::Ordinary => envelopes::split_ordinary(input.amount, input.count),
            EnvelopeKind::Lucky => {
                let mut failure = None;
                let mut random = || {
                    secrets::random_bytes::<8>().map_or_else(
                        |error| {
                            failure = Some(error);
                            0
                        },
                        u64::from_be_bytes,
                    )
                };
                let packets =
                    envelopes::split_lucky(total, input.count, settings.packet_max, &mut random);
                if let Some(error) = failure {
                    return Err(error.into());
                }
                packets
            }
        };
        let currency = self.config.currency;
        let commitment = envelopes::packets_commitment(id, currency.as_str(), &packets);
        let reference = format!("env_{id}");
        let registration = NewRegistration::new(
            RegistrationKind::Document,
            super::payload_digest(&commitment),
            u128::from(sender.id),
            &reference,
            &reference,
        )
        .map_err(|error| PaymentError::Ledger(error.to_string()))?;
        let registration_id = match self.ledger.register(vec![registration])?.await?.pop() {
            Some(
                sequencer::RegistrationOutcome::Created(stored)
                | sequencer::RegistrationOutcome::Exists(stored),
            ) => stored.registration.id,
            other => {
                return Err(PaymentError::Ledger(format!(
                    "the envelope's registration was refused: {other:?}"
                )))
            }
        };
        let envelope = Envelope {
            id,
            sender_user_id: sender.id,
            group_id,
            recipient_user_id,
            kind: input.kind,
            total,
            currency: currency.as_str().to_owned(),
            packets,
            greeting: input.greeting,
            registration_id,
            state: EnvelopeState::Open,
            created_at: now_s,
            expires_at: now_s + settings.lifetime_s,
            returned: 0,
            closed_at: None,
        };
        let mut funding = NewTransfer::new(
            transfer_id(id, 1),
            sender.wallet_account_id,
            ENVELOPES_ACCOUNT_ID,
            u128::from(total),
            currency,
        );
        funding.user_data = u128::from(id);
        funding.kind = TRANSFER_ENVELOPE;
        let mut records = vec![Record::Envelope(envelope.clone())];
        records.extend(Idempotency::record(idempotency, render, &envelope, now_s));
        let results = self
            .commit(vec![Event::CreateTransfer(funding)], records)
            .await?;
        match first_refusal(&results) {
            None => {
                self.remember_spending(sender, spending);
                let members = match envelope.group_id {
                    Some(group_id) => Some(self.member_set(group_id)?),
                    None => None,
                };
                let book = Book::new(envelope.clone(), members, []);
                self.cache_book(envelope.id, Arc::new(Mutex::new(book)));
                Ok(Outcome::Done(envelope))
            }
            Some(result) => Err(Self::refusal(result)),
        }
    }

    /// Keeps `book` in memory (or the one another request put there first).
    fn cache_book(&self, envelope_id: u64, book: Arc<Mutex<Book>>) -> Arc<Mutex<Book>> {
        if self.handles.store().shared() {
            // Other nodes grab too: the book is read from the store each time.
            return book;
        }
        let mut books = self.envelope_books.books.lock().expect("books");
        if books.len() >= BOOKS_CACHED_MAX {
            // The oldest envelopes (smallest ids) are the least likely to be grabbed.
            let mut ids: Vec<u64> = books.keys().copied().collect();
            ids.sort_unstable();
            for id in &ids[..ids.len() / 2] {
                books.remove(id);
            }
        }
        books.entry(envelope_id).or_insert(book).clone()
    }

    /// The book of `envelope_id`, from memory or the store (the envelope, its group's members,
    /// and the packets' transfers that exist).
    fn book(&self, envelope_id: u64) -> Result<Arc<Mutex<Book>>, PaymentError> {
        if let Some(book) = self
            .envelope_books
            .books
            .lock()
            .expect("books")
            .get(&envelope_id)
        {
            return Ok(book.clone());
        }
        let envelope = self
            .handles
            .records(|records| records.envelope(envelope_id))?
            .ok_or(PaymentError::NotFound("red envelope"))?;
        let members = match envelope.group_id {
            Some(group_id) => Some(self.member_set(group_id)?),
            None => None,
        };
        let ids: Vec<u128> = (0..envelope.packets.len())
            .map(|packet| packet_transfer_id(envelope.id, packet))
            .collect();
        let mut transfers = Vec::with_capacity(ids.len());
        self.handles
            .ledger(|reader| reader.load_transfers(&ids, &mut transfers))?;
        let grabs: Vec<(usize, u64)> = transfers
            .iter()
            .filter_map(|stored| {
                let packet = ids.iter().position(|id| *id == stored.transfer.id)?;
                Some((
                    packet,
                    u64::try_from(stored.transfer.credit_account_id).ok()?,
                ))
            })
            .collect();
        let book = Arc::new(Mutex::new(Book::new(envelope, members, grabs)));
        Ok(self.cache_book(envelope_id, book))
    }

    fn forget_book(&self, envelope_id: u64) {
        self.envelope_books
            .books
            .lock()
            .expect("books")
            .remove(&envelope_id);
    }

    /// Grabs the next packet of an envelope for `user`.
    pub async fn grab(
        &self,
        user: &User,
        envelope_id: u64,
        now_s: u64,
    ) -> Result<Grab, PaymentError> {
        // On a shared store, one grab of an envelope at a time among the nodes, each on the
        // book read from the store under the envelope's lock (the ledger says who got what).
        let _shared = if self.handles.store().shared() {
            Some(self.locks.lock(&[lock_key("envelope", envelope_id)]).await)
        } else {
            None
        };
        let book = self.book(envelope_id)?;
        let (packet, amount, finished) = {
            let mut book = book.lock().expect("book");
            let packet = book.grab(user.id, now_s).map_err(PaymentError::Grab)?;
            let finished = book.is_last().then(|| Envelope {
                state: EnvelopeState::Finished,
                closed_at: Some(now_s),
                ..book.envelope.clone()
            });
            (packet, book.envelope.packets[packet], finished)
        };
        let mut transfer = NewTransfer::new(
            packet_transfer_id(envelope_id, packet),
            ENVELOPES_ACCOUNT_ID,
            user.wallet_account_id,
            u128::from(amount),
            self.config.currency,
        );
        transfer.user_data = u128::from(envelope_id);
        transfer.kind = TRANSFER_ENVELOPE_GRAB;
        let records = finished.iter().cloned().map(Record::Envelope).collect();
        let committed = self
            .commit(vec![Event::CreateTransfer(transfer)], records)
            .await;
        let outcome = match committed {
            Ok(results) => match first_refusal(&results) {
                None => Ok(Grab {
                    envelope_id,
                    packet,
                    amount,
                }),
                Some(result) => Err(PaymentError::Ledger(format!(
                    "the ledger refused a red envelope's packet: {result:?}"
                ))),
            },
            Err(error) => Err(error),
        };
        let mut book = book.lock().expect("book");
        book.in_flight -= 1;
        match outcome {
            Ok(grab) => {
                if let Some(finished) = finished {
                    book.envelope.state = finished.state;
                    book.envelope.closed_at = finished.closed_at;
                }
                Ok(grab)
            }
            Err(error) => {
                // Memory handed out a packet the store does not have: read it again.
                drop(book);
                self.forget_book(envelope_id);
                Err(error)
            }
        }
    }

    /// An envelope and its grabs, to its sender and its recipients.
    pub fn envelope_view(
        &self,
        user_id: u64,
        envelope_id: u64,
    ) -> Result<EnvelopeView, PaymentError> {
        let book = self.book(envelope_id)?;
        let book = book.lock().expect("book");
        if !book.may_see(user_id) {
            return Err(PaymentError::NotFound("red envelope"));
        }
        Ok(EnvelopeView {
            envelope: book.envelope.clone(),
            grabs: book.grabs().collect(),
        })
    }

    /// Closes every open envelope whose expiry has passed, giving what is left back to its
    /// sender once; returns how many it closed. Envelopes with grabs in flight wait for the
    /// next run.
    pub async fn expire_envelopes(&self, now_s: u64, limit: usize) -> Result<usize, PaymentError> {
        let due = self
            .handles
            .records(|records| records.envelopes_due(now_s, limit))?;
        let mut closed = 0;
        for envelope in due {
            let _guards = self.locks.lock(&[lock_key("envelope", envelope.id)]).await;
            let book = self.book(envelope.id)?;
            let Some(next) = ({
                let mut book = book.lock().expect("book");
                let next = book.close(now_s);
                if next.is_some() {
                    // No grab gets a packet from here on.
                    book.envelope.state = EnvelopeState::Expired;
                }
                next
            }) else {
                continue;
            };
            let mut events = Vec::new();
            if next.returned > 0 {
                let mut back = NewTransfer::new(
                    transfer_id(envelope.id, 2),
                    ENVELOPES_ACCOUNT_ID,
                    u128::from(envelope.sender_user_id),
                    u128::from(next.returned),
                    self.config.currency,
                );
                back.user_data = u128::from(envelope.id);
                back.kind = TRANSFER_ENVELOPE_RETURN;
                events.push(Event::CreateTransfer(back));
            }
            let results = self
                .commit(events, vec![Record::Envelope(next.clone())])
                .await;
            match results.map(|results| first_refusal(&results)) {
                // Returned now, or by an earlier run whose record this one repeats.
                Ok(None | Some(EventResult::Exists)) => {
                    book.lock().expect("book").envelope = next;
                    closed += 1;
                }
                Ok(Some(result)) => {
                    self.forget_book(envelope.id);
                    return Err(PaymentError::Ledger(format!(
                        "the return of red envelope {} was refused: {result:?}",
                        envelope.id
                    )));
                }
                Err(error) => {
                    self.forget_book(envelope.id);
                    return Err(error);
                }
            }
        }
        Ok(closed)
    }
}

/// The luckiest packet of a finished or expired envelope: the largest amount, the earliest
/// grab on a tie.
pub fn luckiest(view: &EnvelopeView) -> Option<usize> {
    if view.envelope.kind != EnvelopeKind::Lucky || view.envelope.state == EnvelopeState::Open {
        return None;
    }
    view.grabs
        .iter()
        .max_by(|left, right| left.2.cmp(&right.2).then(right.0.cmp(&left.0)))
        .map(|grab| grab.0)
}

impl From<GrabRefusal> for PaymentError {
    fn from(refusal: GrabRefusal) -> Self {
        PaymentError::Grab(refusal)
    }
}
