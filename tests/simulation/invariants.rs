//! The invariants the simulation checks: after every step ([`check_server`]), and about the
//! drain the server chose at the signal ([`check_drain_plan`]) and when it exited
//! ([`exit_deadline`]).

use wsdrain::app::drain_plan::ShortReason;
use wsdrain::base::time::{Millis, NEVER};
use wsdrain::config::GRACE_MARGIN;
use wsdrain::connection::Kind;
use wsdrain::server::Server;

use crate::net::{SimNet, World};

/// Whether a `/prestop` waits on the server at `now` (its answer is still to come): a SIGTERM
/// now means the grace period is over.
pub fn hook_waiting(server: &Server<SimNet>, now: Millis) -> bool {
    server
        .connections()
        .any(|view| view.conn.prestop_answer_at().is_some_and(|at| at > now))
}

/// After the first signal (at `signalled`, with a `/prestop` waiting then or not): the drain
/// must be the short one when the hook waited, and a short drain keeps its promise: it ends
/// within `SHORT_DRAIN`, or within what the known grace period leaves.
pub fn check_drain_plan(
    server: &Server<SimNet>,
    signalled: Millis,
    hook_was_waiting: bool,
) -> Result<(), String> {
    let ctx = server.context();
    let Some(plan) = ctx.lifecycle.drain_plan() else {
        return Err("draining without a drain plan".into());
    };
    let short_drain = ctx.config.short_drain.as_millis() as Millis;
    if hook_was_waiting && plan.short != Some(ShortReason::GraceOver) {
        return Err(format!(
            "SIGTERM came while /prestop waited (the grace period is over), but the drain is \
             {plan:?}"
        ));
    }
    if plan.short == Some(ShortReason::GraceOver) && plan.deadline_ms() > short_drain {
        return Err(format!(
            "the short drain takes {} ms, over SHORT_DRAIN {short_drain} ms",
            plan.deadline_ms()
        ));
    }
    if plan.short.is_some() && plan.linger_ms > 0 {
        return Err(format!("a short drain lingers: {plan:?}"));
    }
    if let Some(grace) = ctx.config.termination_grace_period {
        let began = ctx
            .lifecycle
            .prestop_called_at()
            .map_or(signalled, |at| at.min(signalled));
        let grace_end = began + grace.as_millis() as Millis - GRACE_MARGIN.as_millis() as Millis;
        let end = signalled + plan.deadline_ms();
        if end > grace_end.max(signalled + short_drain) {
            return Err(format!(
                "the drain ends at {end} ms, past the grace period's end {grace_end} ms \
                 (TERMINATION_GRACE_PERIOD {grace:?} from {began} ms, less the margin): {plan:?}"
            ));
        }
    }
    Ok(())
}

/// When the process must be gone after the first signal at `signalled`: the plan's end.
pub fn exit_deadline(server: &Server<SimNet>, signalled: Millis) -> Option<Millis> {
    let plan = server.context().lifecycle.drain_plan()?;
    Some(signalled + plan.deadline_ms())
}

/// The server-side invariants, checked after every step.
pub fn check_server(
    server: &Server<SimNet>,
    world: &World,
    now: Millis,
    max_public: usize,
) -> Result<(), String> {
    let ctx = server.context();
    let config = &ctx.config;
    let prestop_wait = config.prestop_answer_delay().as_millis() as Millis;
    // By then every WebSocket has its close frame: its notice comes within the plan's window,
    // its close at most the plan's handover later.
    let close_by = ctx
        .lifecycle
        .drain_plan()
        .map(|plan| plan.window_ms + plan.handover_ms);
    let mut counted = [0usize; 3];
    let socket_of = |slot: usize| {
        world
            .sockets
            .iter()
            .position(|s| s.slot == Some(slot) && s.accepted && !s.server_closed)
    };
    let memory_cap =
        config.max_output_bytes + config.max_message_size + config.max_header_bytes + 64 * 1024;
    for view in server.connections() {
        let conn = view.conn;
        counted[match conn.kind() {
            Kind::Http => 0,
            Kind::WebSocket => 1,
            Kind::Admin => 2,
        }] += 1;
        let Some(id) = socket_of(view.slot) else {
            return Err(format!("conn #{} has no socket", view.generation));
        };
        // No lost wake-up: input the connection wants, with nothing to make the loop read it.
        let socket = &world.sockets[id];
        if socket.has_input_for_server()
            && conn.wants_input(ctx)
            && !world.event_pending(view.slot)
            && !view.rerun_queued
        {
            return Err(format!(
                "conn #{} wants input and its socket holds some ({} bytes{}), but no event or \
                 rerun will wake it (deadline {}): a lost wake-up",
                view.generation,
                socket.c2s_buf.len(),
                if socket.fin_arrived { ", FIN" } else { "" },
                view.deadline
            ));
        }
        // A waiting /prestop has a finite answer time, not later than its wait from now, and
        // the loop wakes for it.
        if let Some(at) = conn.prestop_answer_at() {
            if at == NEVER || at > now + prestop_wait {
                return Err(format!(
                    "conn #{}: a waiting /prestop has no answer time in reach ({at})",
                    view.generation
                ));
            }
            if at <= now || view.deadline > at {
                return Err(format!(
                    "conn #{}: a /prestop due at {at} is still waiting (deadline {})",
                    view.generation, view.deadline
                ));
            }
        }
        // A deadline the step handled is not due again at once (a timer that never moves
        // spins the loop), unless the connection is queued to run again anyway.
        if view.deadline <= now && !view.rerun_queued {
            return Err(format!(
                "conn #{} ({:?}): its deadline {} is already due after the step",
                view.generation,
                conn.kind(),
                view.deadline
            ));
        }
        if conn.buffered_bytes() > memory_cap {
            return Err(format!(
                "conn #{} holds {} bytes, over {memory_cap}",
                view.generation,
                conn.buffered_bytes()
            ));
        }
        // After the drain window and the handover every WebSocket has its close frame.
        if let (Some(started), Some(close_by)) = (ctx.lifecycle.drain_started_at(), close_by)
            && now >= started + close_by
            && conn.is_open_websocket()
        {
            return Err(format!(
                "conn #{}: a WebSocket still without its close frame {} ms into the drain \
                 (window + handover {close_by} ms of the {} drain)",
                view.generation,
                now - started,
                ctx.lifecycle.drain_plan().map_or("?", |p| p.kind())
            ));
        }
    }
    let open = ctx.open;
    if counted != [open.http, open.websocket, open.admin] {
        return Err(format!(
            "open counts {open:?}, but the slab holds {counted:?}"
        ));
    }
    if open.http + open.websocket > max_public.max(1) + 1 {
        return Err(format!("{open:?} over MAX_CONNECTIONS {max_public}"));
    }
    let m = &ctx.metrics;
    let refused_binary = m.ws.closes(1003, true);
    if m.ws.messages_in != m.ws.messages_out + m.ws.messages_after_close + refused_binary {
        return Err(format!(
            "messages do not balance: {} in, {} out, {} after close, {refused_binary} refused",
            m.ws.messages_in, m.ws.messages_out, m.ws.messages_after_close
        ));
    }
    Ok(())
}
