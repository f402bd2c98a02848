//! Who may see and change what (the original's §6.2 rules), as pure functions.
//!
//! * Every object: visible to a superuser, or to a caller acting for its `customerId` (exact match).
//! * Insight and AgendaTemplate are also *readable* when `isGlobal`, or when one of the caller's
//!   accounts is in `allowedCustomerIds` (compared lower-cased). Writes still need ownership.
//! * Create: the caller must act for the new object's customer. Update: the caller must be able to
//!   write the stored object and, if the owner changes, the new one. Delete: write on the stored object.

use crate::authz::Principal;
use crate::model::{Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, OperationProgress, ResourcePool};

/// An object with an owner, and possibly shared read access.
pub trait Owned {
    /// The owning customer id.
    fn owner_id(&self) -> Option<&str>;
    /// Readable by everyone.
    fn is_global_object(&self) -> bool {
        false
    }
    /// Customers that may read it.
    fn allowed_customers(&self) -> &[String] {
        &[]
    }
}

macro_rules! owned {
    ($($ty:ty),*) => {$(
        impl Owned for $ty {
            fn owner_id(&self) -> Option<&str> {
                self.customer_id.as_deref()
            }
        }
    )*};
}
owned!(Agenda, AgendaProgress, OperationProgress, Customer, ResourcePool);

macro_rules! shared {
    ($($ty:ty),*) => {$(
        impl Owned for $ty {
            fn owner_id(&self) -> Option<&str> {
                self.customer_id.as_deref()
            }
            fn is_global_object(&self) -> bool {
                self.is_global
            }
            fn allowed_customers(&self) -> &[String] {
                &self.allowed_customer_ids
            }
        }
    )*};
}
shared!(Insight, AgendaTemplate);

/// Whether the caller owns the object (or is a superuser).
pub fn owns(principal: &Principal, obj: &(impl Owned + ?Sized)) -> bool {
    principal.superuser || obj.owner_id().is_some_and(|o| principal.accounts.contains(o))
}

/// Whether the caller may read the object.
pub fn can_read(principal: &Principal, obj: &(impl Owned + ?Sized)) -> bool {
    owns(principal, obj)
        || obj.is_global_object()
        || obj.allowed_customers().iter().any(|allowed| {
            let allowed = allowed.to_lowercase();
            principal.accounts.iter().any(|a| a.to_lowercase() == allowed)
        })
}

/// Whether the caller may create `new`.
pub fn can_create(principal: &Principal, new: &(impl Owned + ?Sized)) -> bool {
    owns(principal, new)
}

/// Whether the caller may replace `stored` with `new`.
pub fn can_update(principal: &Principal, stored: &(impl Owned + ?Sized), new: &(impl Owned + ?Sized)) -> bool {
    owns(principal, stored) && (stored.owner_id() == new.owner_id() || owns(principal, new))
}

/// Whether the caller may delete `stored`.
pub fn can_delete(principal: &Principal, stored: &(impl Owned + ?Sized)) -> bool {
    owns(principal, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insight(owner: &str, global: bool, allowed: &[&str]) -> Insight {
        Insight {
            customer_id: Some(owner.into()),
            is_global: global,
            allowed_customer_ids: allowed.iter().map(|s| s.to_string()).collect(),
            ..Insight::default()
        }
    }

    fn agenda(owner: &str) -> Agenda {
        Agenda { customer_id: Some(owner.into()), ..Agenda::default() }
    }

    #[test]
    fn table() {
        let owner = Principal::customer("u1", ["owner"]);
        let other = Principal::customer("u2", ["other"]);
        let allowed = Principal::customer("u3", ["Allowed"]);
        let su = Principal::superuser("root");
        let anon = Principal::anonymous();
        let private_insight = insight("owner", false, &["ALLOWED"]);
        let global_insight = insight("owner", true, &[]);
        let a = agenda("owner");
        type Row<'a> = (&'a str, &'a Principal, bool, bool, bool, bool, bool, bool);
        let cases: Vec<Row<'_>> = vec![
            // name, who, insight read, insight write, global read, global write, agenda read, agenda write
            ("owner", &owner, true, true, true, true, true, true),
            ("other", &other, false, false, true, false, false, false),
            ("allowed", &allowed, true, false, true, false, false, false),
            ("superuser", &su, true, true, true, true, true, true),
            ("anonymous", &anon, false, false, true, false, false, false),
        ];
        for (name, p, ir, iw, gr, gw, ar, aw) in cases {
            assert_eq!(can_read(p, &private_insight), ir, "{name} read insight");
            assert_eq!(can_update(p, &private_insight, &private_insight), iw, "{name} write insight");
            assert_eq!(can_read(p, &global_insight), gr, "{name} read global insight");
            assert_eq!(can_delete(p, &global_insight), gw, "{name} delete global insight");
            assert_eq!(can_read(p, &a), ar, "{name} read agenda");
            assert_eq!(can_create(p, &a), aw, "{name} create agenda");
            assert_eq!(can_update(p, &a, &a), aw, "{name} update agenda");
            assert_eq!(can_delete(p, &a), aw, "{name} delete agenda");
        }
    }

    #[test]
    fn moving_an_object_needs_both_owners() {
        let p = Principal::customer("u", ["a"]);
        assert!(!can_update(&p, &agenda("a"), &agenda("b")));
        let p2 = Principal::customer("u", ["a", "b"]);
        assert!(can_update(&p2, &agenda("a"), &agenda("b")));
    }

    #[test]
    fn customer_match_is_exact_but_allowed_list_is_case_insensitive() {
        let p = Principal::customer("u", ["Owner"]);
        assert!(!can_read(&p, &agenda("owner")));
        assert!(can_read(&p, &insight("x", false, &["owner"])));
    }
}
