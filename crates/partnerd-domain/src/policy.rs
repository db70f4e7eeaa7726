//! Access control in one place: who may do what.
//!
//! Every handler states the [`Action`] it performs and asks [`authorize`];
//! nothing else in the code decides access. The route-by-role test in the
//! web crate walks every route with every kind of [`Actor`].

use crate::account::StaffRole;

/// Who is asking, as established by the session cookie or the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    Partner { partner_id: i64 },
    Staff { staff_id: i64, role: StaffRole },
    ApiKey { key_id: i64 },
}

/// What they want to do. Actions on one partner carry that partner's manager
/// so the rule can tell a manager's own partners from the others (R-ACC-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The partner panel, on the caller's own account.
    UsePanel,
    /// Any page of the admin console that lists or shows program-wide data.
    UseConsole,
    /// See one partner's details, reports and notes.
    ViewPartner {
        partner_id: i64,
        manager_id: Option<i64>,
    },
    /// Act on one partner as their manager (notes, reviews).
    ActOnPartner {
        partner_id: i64,
        manager_id: Option<i64>,
    },
    /// Remove a partner for a violation of the Terms (R-ACC-3), reassign managers.
    AdministerPartners,
    /// Create staff, edit settings and terms, read the audit log and outbox.
    AdministerProgram,
    /// R-PAY-3: see the withdrawal queue, approve or reject withdrawals, export
    /// them for a mass payment and mark them paid or failed. Admins only.
    DecideWithdrawals,
    /// The integration API.
    UseApi,
}

/// Why access was refused; the web layer maps each to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Nobody is signed in (or the API key is missing/wrong): sign in first.
    Unauthenticated,
    /// Signed in, but not allowed.
    Forbidden,
    /// The object exists but is not the caller's to see: answer as if absent,
    /// so partners cannot probe for each other.
    Hidden,
}

pub fn authorize(actor: Actor, action: Action) -> Result<(), Denied> {
    use Action::*;
    match (actor, action) {
        (Actor::Partner { .. }, UsePanel) => Ok(()),
        (Actor::Staff { .. }, UseConsole) => Ok(()),
        (
            Actor::Staff {
                role: StaffRole::Admin,
                ..
            },
            _,
        ) if action != UsePanel && action != UseApi => Ok(()),
        (
            Actor::Staff {
                staff_id,
                role: StaffRole::Manager,
            },
            ViewPartner { manager_id, .. } | ActOnPartner { manager_id, .. },
        ) => {
            if manager_id == Some(staff_id) {
                Ok(())
            } else {
                Err(Denied::Hidden)
            }
        }
        (Actor::Partner { partner_id: me }, ViewPartner { partner_id, .. }) => {
            if me == partner_id {
                Ok(())
            } else {
                Err(Denied::Hidden)
            }
        }
        (Actor::ApiKey { .. }, UseApi) => Ok(()),
        (Actor::Anonymous, _) => Err(Denied::Unauthenticated),
        (Actor::ApiKey { .. }, _) => Err(Denied::Unauthenticated),
        (_, UseApi) => Err(Denied::Unauthenticated),
        _ => Err(Denied::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: Actor = Actor::Staff {
        staff_id: 1,
        role: StaffRole::Admin,
    };
    const MANAGER: Actor = Actor::Staff {
        staff_id: 2,
        role: StaffRole::Manager,
    };
    const PARTNER: Actor = Actor::Partner { partner_id: 10 };

    #[test]
    fn managers_see_their_own_partners_only() {
        let own = Action::ViewPartner {
            partner_id: 10,
            manager_id: Some(2),
        };
        let other = Action::ViewPartner {
            partner_id: 11,
            manager_id: Some(3),
        };
        assert_eq!(authorize(MANAGER, own), Ok(()));
        assert_eq!(authorize(MANAGER, other), Err(Denied::Hidden));
        assert_eq!(authorize(ADMIN, other), Ok(()));
        assert_eq!(
            authorize(MANAGER, Action::AdministerProgram),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn partners_see_only_themselves_and_never_the_console() {
        assert_eq!(authorize(PARTNER, Action::UsePanel), Ok(()));
        assert_eq!(
            authorize(PARTNER, Action::UseConsole),
            Err(Denied::Forbidden)
        );
        let other = Action::ViewPartner {
            partner_id: 11,
            manager_id: None,
        };
        assert_eq!(authorize(PARTNER, other), Err(Denied::Hidden));
        assert_eq!(
            authorize(Actor::Anonymous, Action::UsePanel),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(authorize(ADMIN, Action::UsePanel), Err(Denied::Forbidden));
    }

    #[test]
    fn only_admins_decide_withdrawals() {
        assert_eq!(authorize(ADMIN, Action::DecideWithdrawals), Ok(()));
        assert_eq!(
            authorize(MANAGER, Action::DecideWithdrawals),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            authorize(PARTNER, Action::DecideWithdrawals),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            authorize(Actor::Anonymous, Action::DecideWithdrawals),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            authorize(Actor::ApiKey { key_id: 1 }, Action::DecideWithdrawals),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn only_api_keys_use_the_api() {
        assert_eq!(
            authorize(Actor::ApiKey { key_id: 1 }, Action::UseApi),
            Ok(())
        );
        assert_eq!(
            authorize(ADMIN, Action::UseApi),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            authorize(Actor::ApiKey { key_id: 1 }, Action::UseConsole),
            Err(Denied::Unauthenticated)
        );
    }
}
