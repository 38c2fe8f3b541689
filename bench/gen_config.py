#!/usr/bin/env python3
"""Writes a decK file for the benchmarks: the tutorial's setup plus routes
without plugins, with key-auth only, and with a cookie-storage session,
optionally padded with many consumers (each with a key) and many routes.

Padding services carry key-auth; --padding-plugins adds others to each of
them (bench/sync.sh: key-auth,session,request-termination)."""

import argparse

ANONYMOUS_ID = "81823632-10c0-4098-a4f7-31062520c1e6"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--consumers", type=int, default=0)
    parser.add_argument("--routes", type=int, default=0)
    parser.add_argument("--services", type=int, default=0)
    parser.add_argument("--padding-plugins", default="key-auth",
                        help="comma-separated plugins of each padding service: "
                             "key-auth, session, request-termination")
    args = parser.parse_args()
    padding_plugins = {
        "key-auth": ["- name: key-auth"],
        "session": ["- name: session", "  config:", "    storage: cookie", "    cookie_secure: false"],
        "request-termination": [
            "- name: request-termination", "  consumer: anonymous_users", "  config:",
            "    status_code: 403", "    message: Forbidden",
        ],
    }
    wanted = [name for name in args.padding_plugins.split(",") if name]
    unknown = [name for name in wanted if name not in padding_plugins]
    if unknown:
        parser.error(f"unknown --padding-plugins: {', '.join(unknown)}")
    out = ['_format_version: "3.0"', "services:"]

    def service(name, path, plugins):
        out.append(f"  - name: {name}")
        out.append(f"    url: {args.upstream}")
        out.append("    routes:")
        out.append(f"      - name: {name}-route")
        out.append(f"        paths: [{path}]")
        if plugins:
            out.append("    plugins:")
            out.extend("      " + line for line in plugins)

    key_auth = ["- name: key-auth", "  config:", "    key_names: [apikey]", f"    anonymous: {ANONYMOUS_ID}"]
    service("example-service", "/anything", key_auth + [
        "- name: session", "  config:", "    storage: kong", "    cookie_secure: false",
    ])
    service("plain-service", "/plain", [])
    service("key-service", "/key", ["- name: key-auth"])
    service("cookie-service", "/cookie", key_auth + [
        "- name: session", "  config:", "    storage: cookie", "    cookie_secure: false",
    ])
    if args.routes:
        services = max(args.services, args.routes // 10, 1)
        per_service = max(args.routes // services, 1)
        for s in range(services):
            out.append(f"  - name: padding-service-{s}")
            out.append(f"    url: {args.upstream}")
            out.append("    routes:")
            for r in range(per_service):
                out.append(f"      - name: padding-route-{s}-{r}")
                out.append(f"        paths: [/padding/{s}/{r}]")
                out.append(f"        hosts: [padding-{s}.example.com]")
            if wanted:
                out.append("    plugins:")
                for name in wanted:
                    out.extend("      " + line for line in padding_plugins[name])
    out.append("consumers:")
    out.append("  - username: alex")
    out.append("    keyauth_credentials:")
    out.append("      - key: hello_world")
    out.append("  - username: anonymous_users")
    out.append(f"    id: {ANONYMOUS_ID}")
    for c in range(args.consumers):
        out.append(f"  - username: consumer-{c}")
        out.append("    keyauth_credentials:")
        out.append(f"      - key: key-{c:06d}-benchmark")
    out.append("plugins:")
    out.append("  - name: request-termination")
    out.append("    service: example-service")
    out.append("    consumer: anonymous_users")
    out.append("    config:")
    out.append("      status_code: 403")
    out.append("      message: Forbidden")
    out.append("  - name: request-termination")
    out.append("    service: cookie-service")
    out.append("    consumer: anonymous_users")
    out.append("    config:")
    out.append("      status_code: 403")
    out.append("      message: Forbidden")
    print("\n".join(out))


if __name__ == "__main__":
    main()
