//! Agenda-template expansion (`staticParameters`, `pop.payload`).
