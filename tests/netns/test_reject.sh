#!/usr/bin/env bash
# (f) ingress.default=reject: the denied client's connection fails fast (refused, not a timeout),
# IPv4 and IPv6, for every strategy, with and without the docker-proxy-like listener; the allowed
# client still gets through.
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

for strategy in docker_user prerouting both; do
    t_lab_reset
    new_rules_dir
    t_dfw_ok "$strategy: apply with ingress.default=reject" "{\"strategy\":\"$strategy\",\"ingress\":{\"default\":\"reject\"}}" || continue
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied fastfail; outbound_specs)
    T_PRE="$strategy reject, proxy on: " expect_probes "${P[@]}"
    lab_proxy off
    mapfile -t P < <(reach_specs allowed dnat; reach_specs denied fastfail)
    T_PRE="$strategy reject, proxy off: " expect_probes "${P[@]}"
    if t_dfw_ok "$strategy: reject, second run" "{\"strategy\":\"$strategy\",\"ingress\":{\"default\":\"reject\"}}"; then
        t_changed "$strategy: reject, second run reports changed=false" false
    fi
    # switching back to drop: the denied client times out again
    if t_dfw_ok "$strategy: back to drop" "{\"strategy\":\"$strategy\"}"; then
        t_changed "$strategy: switching reject -> drop reports changed" true
        mapfile -t P < <(reach_specs denied timeout 8080; reach_specs allowed dnat 8080)
        T_PRE="$strategy drop again: " expect_probes "${P[@]}"
    fi
done

t_done
