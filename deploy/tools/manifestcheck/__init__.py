"""The rules deploy/tools/check_manifests.py asserts on a rendering of deploy/ (kubectl kustomize).

One job per module:
  failures.py        the list every rule appends to, and check()
  units.py           durations as the server parses them, Kubernetes quantities, Prometheus
                     durations
  helptext.py        the settings, defaults and budget rule printed by `wsdrain --help`
  k8s.py             label selectors and named ports, as Kubernetes reads them
  deployment.py      the pod: settings, budget rule, probes and hook, rollout, security, memory
  backendconfig.py   the load balancer's side: draining timeout, timeoutSec, health check
  spot.py            GKE Spot node pools: node selector, toleration, the 15 s of a preemption
  monitoring.py      Managed Service for Prometheus: PodMonitoring and Rules
  fence.py           the NetworkPolicy around the admin port
  rendering.py       one rendering: which objects, their schemas, and every rule above
  breakages.py       known ways to break any rendering (and the helpers that edit one)
  breakages_gke.py   known ways to break the objects of deploy/gke
  breakages_spot.py  known ways to break the Spot settings of deploy/gke-spot
  selftest.py        runs the breakages, the duration cases and the --help cases

Only the Python standard library, PyYAML and jsonschema.
"""
