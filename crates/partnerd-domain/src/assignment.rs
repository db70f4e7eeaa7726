//! R-ACC-2: which affiliate manager a new partner gets.

/// A manager as the assignment rule sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerLoad {
    pub staff_id: i64,
    pub name: String,
    pub assigned_partners: i64,
}

/// The manager with the fewest assigned partners, ties broken by name (then
/// id, so the choice is total); `None` while the vendor has no managers.
pub fn pick_manager(managers: &[ManagerLoad]) -> Option<i64> {
    managers
        .iter()
        .min_by(|a, b| {
            a.assigned_partners
                .cmp(&b.assigned_partners)
                .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
                .then_with(|| a.staff_id.cmp(&b.staff_id))
        })
        .map(|m| m.staff_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(staff_id: i64, name: &str, assigned_partners: i64) -> ManagerLoad {
        ManagerLoad {
            staff_id,
            name: name.into(),
            assigned_partners,
        }
    }

    #[test]
    fn fewest_partners_wins_and_ties_go_by_name() {
        assert_eq!(pick_manager(&[]), None);
        assert_eq!(
            pick_manager(&[load(1, "Zoe", 3), load(2, "Adam", 4)]),
            Some(1)
        );
        assert_eq!(
            pick_manager(&[load(1, "Zoe", 3), load(2, "adam", 3)]),
            Some(2)
        );
    }
}
