"""The load balancer's side of the drain (GKE BackendConfig): how long it lets connections to a
pod that left the NEG go on, how long a WebSocket may live, and how soon its health check
sees /readyz turn 503."""

from .failures import check

# MAX_CONNECTION_AGE <= timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT - this
# (deploy/gke/deployment.yaml): the margin beyond the rule
# MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT < timeoutSec.
AGE_MARGIN_SECONDS = 60


def check_backendconfig(bc, dep, require_age):
    """One BackendConfig against the pod's settings (dep: what check_deployment returned)."""
    name, dur, admin = dep["name"], dep["durations"], dep["admin"]
    p, d, cl = dur["PRESTOP_DELAY"], dur["DRAIN_WINDOW"], dur["CLOSE_TIMEOUT"]
    h = dur["HANDOVER_TIMEOUT"]
    bname = bc["metadata"]["name"]
    bs = bc["spec"]
    drain = bs.get("connectionDraining", {}).get("drainingTimeoutSec", 0)
    check(
        drain >= p + d + h + cl,
        f"BackendConfig {bname}: drainingTimeoutSec {drain} < PRESTOP_DELAY + DRAIN_WINDOW "
        f"+ HANDOVER_TIMEOUT + CLOSE_TIMEOUT = {p + d + h + cl:g}",
    )
    # The load balancer cuts every WebSocket at timeoutSec. The server must have closed it
    # by then: the goaway notice goes out at MAX_CONNECTION_AGE at the latest (it draws up
    # to 10 % less), the close 1012 at most HANDOVER_TIMEOUT later, and the close handshake
    # may take CLOSE_TIMEOUT more.
    age = dur["MAX_CONNECTION_AGE"]
    timeout = bs.get("timeoutSec", 30)
    if age:
        check(
            age + h + cl < timeout,
            f"BackendConfig {bname}: timeoutSec {timeout} must exceed MAX_CONNECTION_AGE + "
            f"HANDOVER_TIMEOUT + CLOSE_TIMEOUT = {age:g} + {h:g} + {cl:g} = "
            f"{age + h + cl:g} s",
        )
        limit = timeout - h - cl - AGE_MARGIN_SECONDS
        check(
            age <= limit,
            f"{name}: MAX_CONNECTION_AGE {age:g} s is over timeoutSec - HANDOVER_TIMEOUT - "
            f"CLOSE_TIMEOUT - {AGE_MARGIN_SECONDS} s = {timeout} - {h:g} - {cl:g} - "
            f"{AGE_MARGIN_SECONDS} = {limit:g} s (BackendConfig {bname})",
        )
    else:
        check(
            not require_age,
            f"{name}: MAX_CONNECTION_AGE must be set: BackendConfig {bname} timeoutSec "
            f"{timeout} ends every WebSocket that the server has not closed",
        )
        check(
            timeout >= 3600,
            f"BackendConfig {bname}: timeoutSec {timeout} < 3600 without MAX_CONNECTION_AGE",
        )
    hc = bs.get("healthCheck", {})
    check(hc.get("type") == "HTTP", f"BackendConfig {bname}: healthCheck type HTTP")
    check(hc.get("requestPath") == "/readyz", f"BackendConfig {bname}: healthCheck /readyz")
    check(hc.get("port") == admin, f"BackendConfig {bname}: healthCheck port {admin}")
    check(
        hc.get("timeoutSec", 5) <= hc.get("checkIntervalSec", 5),
        f"BackendConfig {bname}: healthCheck timeoutSec > checkIntervalSec",
    )
    notice = hc.get("checkIntervalSec", 5) * hc.get("unhealthyThreshold", 2)
    check(
        notice <= p,
        f"BackendConfig {bname}: the LB sees /readyz 503 only after {notice} s, later than "
        f"PRESTOP_DELAY {p:g} s",
    )
