"""Renders the role's unit template (roles/docker_firewall/templates/docker-firewall.service.j2) with
the Debian package's paths, so the package's docker-firewall.service is the role's unit and cannot
drift from it. Usage: python render-unit.py ROOT > docker-firewall.service (needs jinja2, PyYAML)."""

import os
import sys

import jinja2
import yaml

root = sys.argv[1]
with open(os.path.join(root, "roles/docker_firewall/defaults/main.yml"), encoding="utf-8") as f:
    defaults = yaml.safe_load(f)

env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(root, "roles/docker_firewall/templates")),
                         undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                         trim_blocks=True)  # as Ansible's template module
env.filters["basename"] = os.path.basename
env.filters["bool"] = bool  # (Ansible's filters the template uses)
text = env.get_template("docker-firewall.service.j2").render(
    ansible_managed="",
    docker_firewall_service_resync=defaults["docker_firewall_service_resync"],
    docker_firewall_service_restart_sec=defaults["docker_firewall_service_restart_sec"],
    __docker_firewall_service_bin="/usr/sbin/docker_firewall",
    __docker_firewall_service_policy="/etc/docker_firewall/policy.json",
    __docker_firewall_service_state_dir="/var/lib/docker_firewall",
    __docker_firewall_service_state="/var/lib/docker_firewall/published-ports.json",
    __docker_firewall_persist=False,
    __docker_firewall_rules_dirs=[],
)

# The role's header comment names the role; the package's says where it comes from. Documentation=
# points at the man pages and README.Debian instead of the policy file the role writes.
body = text[text.index("[Unit]"):]
lines = []
for line in body.splitlines():
    if line.startswith("Documentation="):
        line = "Documentation=man:docker_firewall-watch(8) file:/usr/share/doc/docker-firewall/README.Debian"
    lines.append(line)
header = (
    "# docker-firewall.service, from the docker-firewall Debian package (rendered from the docker_firewall\n"
    "# role's template by scripts/build-deb). It keeps the policy in /etc/docker_firewall/policy.json in place\n"
    "# and stays inactive until that file exists. Reload (SIGHUP) re-reads the policy.\n"
    "# Local changes: systemctl edit docker-firewall.service\n"
)
sys.stdout.write(header + "\n".join(lines) + "\n")
