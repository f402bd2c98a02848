//! CRUD with visibility for customers, resource pools, insights and agenda templates.

use super::{forbidden, new_id};
use crate::context::Ctx;
use pop_core::authz::Principal;
use pop_core::model::{AgendaTemplate, Customer, Insight, ResourcePool};
use pop_core::store::{IndexField, Page, PageRequest, StoreExt, StoreObject};
use pop_core::visibility::{Owned, can_create, can_delete, can_read, can_update};
use pop_core::{Error, Problem, Result};
use std::sync::Arc;

/// An object the CRUD service manages.
pub trait ManagedObject: StoreObject + Owned + Clone {
    /// Sets the id.
    fn set_id(&mut self, id: String);
    /// Sets the creation and update times.
    fn stamp(&mut self, added: Option<i64>, updated: i64);
    /// Per-kind checks at create and update.
    fn check(&self, _algorithms: &pop_sched::Registry) -> Vec<Problem> {
        Vec::new()
    }
}

macro_rules! managed {
    ($ty:ty, $check:expr) => {
        impl ManagedObject for $ty {
            fn set_id(&mut self, id: String) {
                self.id = Some(id);
            }
            fn stamp(&mut self, added: Option<i64>, updated: i64) {
                if let Some(a) = added {
                    self.added_time = Some(a);
                }
                self.updated_time = Some(updated);
            }
            fn check(&self, algorithms: &pop_sched::Registry) -> Vec<Problem> {
                #[allow(clippy::redundant_closure_call, reason = "the per-kind check is written inline")]
                ($check)(self, algorithms)
            }
        }
    };
}

fn title_required(title: &Option<String>, kind: &str) -> Vec<Problem> {
    match title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => Vec::new(),
        _ => vec![Problem::new(format!("a {kind} needs a title")).field("title")],
    }
}

managed!(Customer, |c: &Customer, _: &pop_sched::Registry| title_required(&c.title, "customer"));
managed!(ResourcePool, |_: &ResourcePool, _: &pop_sched::Registry| Vec::new());
managed!(AgendaTemplate, |t: &AgendaTemplate, _: &pop_sched::Registry| {
    let mut p = Vec::new();
    if !t.agenda.is_object() {
        p.push(Problem::new("an agenda template needs an `agenda` object").field("agenda"));
    }
    p
});
managed!(Insight, |i: &Insight, algorithms: &pop_sched::Registry| {
    let mut p = title_required(&i.title, "insight");
    if let Err(e) = pop_sched::validate_insight(i, algorithms) {
        p.extend(e.problem_list().iter().cloned());
        if e.problem_list().is_empty() {
            p.push(Problem::new(e.to_string()).field("mappers"));
        }
    }
    p
});

/// CRUD services.
#[derive(Clone)]
pub struct ObjectService {
    pub(crate) ctx: Arc<Ctx>,
}

impl ObjectService {
    /// Creates an object owned by its `customerId`; assigns an id when it has none.
    pub async fn create<T: ManagedObject>(&self, principal: &Principal, mut obj: T) -> Result<T> {
        if obj.owner_id().is_none_or(str::is_empty) {
            return Err(Error::problems(vec![
                Problem::new(format!("a {} needs a customerId", T::KIND)).field("customerId"),
            ]));
        }
        if !can_create(principal, &obj) {
            return Err(forbidden(
                principal,
                &format!("create a {} for customer {}", T::KIND, obj.owner_id().unwrap_or_default()),
            ));
        }
        let problems = obj.check(&self.ctx.algorithms);
        if !problems.is_empty() {
            return Err(Error::problems(problems));
        }
        if obj.object_id().is_none_or(str::is_empty) {
            obj.set_id(new_id());
        }
        let now = self.ctx.now();
        obj.stamp(Some(now), now);
        self.ctx.store.create_obj(&mut obj).await?;
        Ok(obj)
    }

    /// Creates a resource pool owned by `owner`, one insight in it (its `resourcePoolId` and, when unset,
    /// its owner are filled in) and a self-owned customer in the pool for each id of `customers`: the
    /// smallest setup that accepts submissions. Returns the insight as stored.
    pub async fn provision_pool(
        &self,
        principal: &Principal,
        pool_id: &str,
        owner: &str,
        mut insight: Insight,
        customers: &[&str],
    ) -> Result<Insight> {
        let pool = ResourcePool {
            id: Some(pool_id.to_owned()),
            customer_id: Some(owner.to_owned()),
            title: Some(pool_id.to_owned()),
            ..Default::default()
        };
        self.create(principal, pool).await?;
        insight.resource_pool_id = Some(pool_id.to_owned());
        if insight.customer_id.is_none() {
            insight.customer_id = Some(owner.to_owned());
        }
        let insight = self.create(principal, insight).await?;
        for c in customers {
            let customer = Customer {
                id: Some((*c).to_owned()),
                customer_id: Some((*c).to_owned()),
                title: Some((*c).to_owned()),
                resource_pool_id: Some(pool_id.to_owned()),
                ..Default::default()
            };
            self.create(principal, customer).await?;
        }
        Ok(insight)
    }

    /// The object, if the caller may see it (`NotFound` otherwise).
    pub async fn get<T: ManagedObject>(&self, principal: &Principal, id: &str) -> Result<T> {
        self.ctx
            .store
            .get_obj::<T>(id)
            .await?
            .filter(|o| can_read(principal, o))
            .ok_or_else(|| Error::not_found(T::KIND, id))
    }

    /// A resource pool with its derived `insightIds`.
    pub async fn get_pool(&self, principal: &Principal, id: &str) -> Result<ResourcePool> {
        let mut pool: ResourcePool = self.get(principal, id).await?;
        let insights: Vec<Insight> = self.ctx.store.query_all(IndexField::ResourcePoolId, id).await?;
        pool.insight_ids = insights.into_iter().filter_map(|i| i.id).collect();
        Ok(pool)
    }

    /// Replaces a stored object. With `version` set, a compare-and-swap (a stale version is `Conflict`);
    /// with `version` 0, last writer wins.
    pub async fn update<T: ManagedObject>(&self, principal: &Principal, mut obj: T) -> Result<T> {
        let id = obj.object_id().map(str::to_owned).ok_or_else(|| {
            Error::problems(vec![Problem::new(format!("an update of a {} needs its id", T::KIND)).field("id")])
        })?;
        let stored: T = self.get(principal, &id).await?;
        if !can_update(principal, &stored, &obj) {
            return Err(forbidden(principal, &format!("change {} {id}", T::KIND)));
        }
        let problems = obj.check(&self.ctx.algorithms);
        if !problems.is_empty() {
            return Err(Error::problems(problems));
        }
        if obj.object_version() == 0 {
            obj.set_object_version(stored.object_version());
        }
        obj.stamp(None, self.ctx.now());
        self.ctx.store.update_obj(&mut obj).await?;
        Ok(obj)
    }

    /// Deletes a stored object; returns it.
    pub async fn delete<T: ManagedObject>(&self, principal: &Principal, id: &str) -> Result<T> {
        let stored: T = self.get(principal, id).await?;
        if !can_delete(principal, &stored) {
            return Err(forbidden(principal, &format!("delete {} {id}", T::KIND)));
        }
        self.ctx.store.delete_obj::<T>(id).await?;
        Ok(stored)
    }

    /// A page of every object of a kind the caller may see (the original's `GET /pop/<kind>`). The page
    /// is read from the store first and filtered after, so a page may hold fewer than `limit` items
    /// while `next` says there are more.
    pub async fn list<T: ManagedObject>(&self, principal: &Principal, page: PageRequest) -> Result<Page<T>> {
        let raw = self.ctx.store.scan(T::KIND, page).await?;
        let mut items = Vec::with_capacity(raw.items.len());
        for r in &raw.items {
            let obj: T = pop_core::store::from_record(r)?;
            if can_read(principal, &obj) {
                items.push(obj);
            }
        }
        Ok(Page { items, next: raw.next })
    }

    /// Every object of a kind the caller may see, all pages read (administration; not for kinds that
    /// grow with traffic).
    pub async fn list_all<T: ManagedObject>(&self, principal: &Principal) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list::<T>(principal, PageRequest { limit: 500, cursor }).await?;
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Objects whose indexed `field` equals `value`, filtered by visibility.
    pub async fn query<T: ManagedObject>(
        &self,
        principal: &Principal,
        field: IndexField,
        value: &str,
        page: PageRequest,
    ) -> Result<Page<T>> {
        if !T::KIND.indexed_fields().contains(&field) {
            return Err(Error::problems(vec![
                Problem::new(format!(
                    "{} cannot be queried by {field}; indexed fields: {}",
                    T::KIND,
                    T::KIND.indexed_fields().iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                ))
                .field(field.as_str()),
            ]));
        }
        let mut p = self.ctx.store.query_obj::<T>(field, value, page).await?;
        p.items.retain(|o| can_read(principal, o));
        Ok(p)
    }
}
