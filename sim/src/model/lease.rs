//! A lease lock with expiry: the primitive distributed locks are built on (an Azure Blob
//! lease, the Functions host's singleton lock on a blob, Redis `SET key value NX PX ttl`).
//!
//! ```text
//!   free ──acquire(owner, d)──► held by owner until now + d ──renew──► ... until now + d
//!    ▲            │                        │
//!    │            │ another owner: refused │ expiry passes with no renewal
//!    └─release────┘◄───────────────────────┘ (another owner may now acquire: a new token)
//! ```
//!
//! The lease lives outside every process (in the storage account, in Redis): a holder that
//! crashes cannot release it, so it stays held until it expires. Every successful acquire
//! hands out a new, larger *fencing token*; a holder whose lease expired and was taken by
//! someone else still runs with its old token, which is how a job that outlives its lease
//! without renewal ends up running next to a second holder.
//!
//! The two flavours differ in one rule only, renewing after expiry:
//! * [`Flavour::Blob`]: Azure Blob Storage lets the holder renew an expired lease "as long as
//!   the blob has not been leased again" (Lease Blob, `renew`);
//! * [`Flavour::Redis`]: the key is gone once its TTL passes, so a late renewal (a
//!   compare-and-`PEXPIRE`) finds nothing and fails.

use crate::time::Nanos;

/// Which store's rules the lease follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// An Azure Blob lease: an expired lease may be renewed by its holder until someone
    /// else acquires it.
    Blob,
    /// A Redis key set with `NX PX`: once it expires, it is gone.
    Redis,
}

/// Who asks for the lease (an instance of a process; a restarted instance is a new owner).
pub type Owner = u64;

/// A granted lease: who holds it, with which fencing token, until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The holder.
    pub owner: Owner,
    /// The fencing token: larger for every successful acquire.
    pub token: u64,
    /// When it expires unless renewed.
    pub expires: Nanos,
}

/// Why a renewal or a release was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// Someone else acquired the lease since this grant (the grant's token is stale).
    Lost,
    /// The lease expired and the store forgot it (Redis).
    Expired,
}

/// One lease (one blob, one key).
#[derive(Clone, Debug)]
pub struct Lease {
    flavour: Flavour,
    /// The last grant, expired or not; `None`: never acquired, or released.
    current: Option<Grant>,
    /// Tokens handed out so far.
    tokens: u64,
    acquired: u64,
    refused: u64,
    takeovers: u64,
}

impl Lease {
    /// A free lease with `flavour`'s rules.
    pub fn new(flavour: Flavour) -> Lease {
        Lease { flavour, current: None, tokens: 0, acquired: 0, refused: 0, takeovers: 0 }
    }

    /// The active grant at `now` (held and not expired), if any.
    pub fn holder(&self, now: Nanos) -> Option<Grant> {
        self.current.filter(|g| now < g.expires)
    }

    /// Whether `grant` is still the active lease at `now`.
    pub fn is_held_by(&self, grant: &Grant, now: Nanos) -> bool {
        self.holder(now).is_some_and(|g| g.token == grant.token)
    }

    /// Takes the lease for `duration` when nobody holds it at `now` (never acquired,
    /// released, or expired). Returns the grant, or `None` when it is held, by `owner` or
    /// anyone else (as a blob lease refuses a second acquire without the lease id).
    pub fn acquire(&mut self, owner: Owner, now: Nanos, duration: Nanos) -> Option<Grant> {
        if self.holder(now).is_some() {
            self.refused += 1;
            return None;
        }
        if self.current.is_some() {
            self.takeovers += 1; // taken after an expiry, not after a release
        }
        self.tokens += 1;
        self.acquired += 1;
        let grant = Grant { owner, token: self.tokens, expires: now.saturating_add(duration) };
        self.current = Some(grant);
        Some(grant)
    }

    /// Extends `grant` to `now + duration`. Refused when someone else acquired the lease
    /// since, or (Redis) when it has already expired.
    pub fn renew(
        &mut self,
        grant: &Grant,
        now: Nanos,
        duration: Nanos,
    ) -> Result<Grant, LeaseError> {
        let Some(current) = self.current.as_mut() else { return Err(LeaseError::Expired) };
        if current.token != grant.token {
            return Err(LeaseError::Lost);
        }
        if now >= current.expires && self.flavour == Flavour::Redis {
            self.current = None;
            return Err(LeaseError::Expired);
        }
        current.expires = now.saturating_add(duration);
        Ok(*current)
    }

    /// Gives the lease up. Refused (and nothing changes) when `grant` is no longer the
    /// lease: someone else took it after it expired.
    pub fn release(&mut self, grant: &Grant) -> Result<(), LeaseError> {
        match self.current {
            Some(current) if current.token == grant.token => {
                self.current = None;
                Ok(())
            }
            Some(_) => Err(LeaseError::Lost),
            None => Err(LeaseError::Expired),
        }
    }

    /// Successful acquires, refused acquires, and acquires of a lease that had expired
    /// under a holder that never released it (takeovers).
    pub fn stats(&self) -> (u64, u64, u64) {
        (self.acquired, self.refused, self.takeovers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn one_holder_at_a_time_until_release_or_expiry() {
        let mut l = Lease::new(Flavour::Blob);
        let a = l.acquire(1, 0, 60 * S).expect("free");
        assert_eq!((a.owner, a.token, a.expires), (1, 1, 60 * S));
        assert_eq!(l.acquire(2, 30 * S, 60 * S), None, "held by 1");
        assert_eq!(l.acquire(1, 30 * S, 60 * S), None, "a second acquire is refused too");
        assert!(l.is_held_by(&a, 59 * S));
        assert!(!l.is_held_by(&a, 60 * S), "expired at its expiry");
        let b = l.acquire(2, 60 * S, 60 * S).expect("expired: free");
        assert_eq!(b.token, 2, "a new fencing token");
        assert_eq!(l.release(&a), Err(LeaseError::Lost), "1's release must not free 2's lease");
        assert!(l.is_held_by(&b, 61 * S));
        assert_eq!(l.release(&b), Ok(()));
        let c = l.acquire(3, 62 * S, 15 * S).expect("released: free");
        assert_eq!(c.token, 3);
        assert_eq!(l.stats(), (3, 2, 1));
    }

    #[test]
    fn renewal_keeps_the_lease_past_its_first_expiry() {
        let mut l = Lease::new(Flavour::Redis);
        let mut g = l.acquire(1, 0, 10 * S).expect("free");
        for k in 1..10 {
            g = l.renew(&g, k * 5 * S, 10 * S).expect("renewed in time");
            assert_eq!(l.acquire(2, k * 5 * S + 1, 10 * S), None);
        }
        assert_eq!(g.expires, 55 * S);
        assert_eq!(g.token, 1, "a renewal keeps the token");
    }

    #[test]
    fn late_renewal_blob_succeeds_until_leased_again_redis_never() {
        let mut blob = Lease::new(Flavour::Blob);
        let g = blob.acquire(1, 0, 15 * S).expect("free");
        let g = blob.renew(&g, 20 * S, 15 * S).expect("blob: expired but not leased again");
        assert_eq!(g.expires, 35 * S);
        let taken = blob.acquire(2, 40 * S, 15 * S).expect("expired");
        assert_eq!(blob.renew(&g, 41 * S, 15 * S), Err(LeaseError::Lost));
        assert!(blob.is_held_by(&taken, 41 * S));

        let mut redis = Lease::new(Flavour::Redis);
        let g = redis.acquire(1, 0, 15 * S).expect("free");
        assert_eq!(redis.renew(&g, 20 * S, 15 * S), Err(LeaseError::Expired));
        assert_eq!(redis.holder(20 * S), None);
        assert!(redis.acquire(2, 20 * S, 15 * S).is_some());
    }
}
