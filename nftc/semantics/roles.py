"""The Zimbra role matrix as data: which role calls which port on which other role, in which release, with which
optional feature. Its one home; `nftc.semantics.cluster` turns it into each host's rules (`zimbra.roles`), and
`nftc matrix` / `nftc explain` print the `why` and `source` of each call.

Facts and their proofs: docs/research/zimbra-roles.md (section 1, "The role matrix"; `source` names the file and
line there, in Zimbra's public repositories). Service names are the catalog's (nftc.semantics.catalog).
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("ldap", "mta", "proxy", "mailbox", "memcached", "logger", "spell", "imapd", "onlyoffice", "docs", "license")
EVERY_HOST = "*"  # as a caller or callee: every host with at least one role (a Zimbra server; not a bastion)

Version = tuple  # (10, 1), (8, 8, 15)
DEFAULT_VERSION: Version = (10, 1)  # `zimbra` absent: the latest open-source release, no feature
OLDEST_KNOWN: Version = (6, 0)  # the oldest release the matrix was checked against (zimbra-attrs.xml `since`)
NEWEST_KNOWN: Version = (10, 1)  # any 10.1.x: the newest


@dataclass(frozen=True)
class Feature:
    """An optional part of a release (`zimbra 10.1 features NAME`): from `since` up to, not including, `before`
    (() : no end); `edition` "NE" for Network Edition only."""

    name: str
    what: str
    since: Version = ()
    before: Version = ()
    edition: str = ""
    until_text: str = ""  # how `before` reads in a message: "9.x"
    role: str = ""  # the role of the host that runs it, when it has one (the feature opens nothing without it)

    def exists_in(self, version: Version) -> bool:
        return (not self.since or version >= self.since) and (not self.before or version < self.before)

    def span_text(self) -> str:
        """`8.7.6 to 9.x`, `10.0 on`, `every version`: where the feature exists, for a message."""
        start = version_text(self.since) if self.since else ""
        if self.before:
            return f"{start or version_text(OLDEST_KNOWN)} to {self.until_text}"
        return f"{start} on" if start else "every version"


FEATURES = (
    Feature("ldaps", "LDAP on 636 (LDAPS) instead of 389 with StartTLS: slapd listens on one of them"),
    Feature("admin_proxy", "the admin console through the proxy (9071): the proxy calls the mailboxes' 7071",
            since=(8, 0)),
    Feature("convertd", "the attachment converter (7047) on the mailboxes, called by the other mailboxes",
            since=(6, 0), edition="NE"),
    Feature("onlyoffice", "OnlyOffice document editing: proxy -> 7084/7085 on the onlyoffice host, which calls the "
                          "mailboxes' 7074", since=(10, 0), edition="NE", role="onlyoffice"),
    Feature("docs", "Zimbra Docs (LibreOffice Online): proxy -> 9980 on the docs host", since=(8, 8, 9),
            before=(10,), until_text="9.x", role="docs"),
    Feature("chat", "Zimbra Chat: XMPP server-to-server (5269) between mailboxes", since=(8, 7, 6), before=(10,),
            until_text="9.x"),
    Feature("ng", "the NG (Zextras) modules: proxy -> 8742/8743 on the mailboxes, 8735/8736 between mailboxes",
            since=(8, 8, 10), before=(10,), until_text="9.x"),
    Feature("license", "the license daemon (8081) on the license host, called by the mailboxes", since=(10, 1),
            edition="NE", role="license"),
)
_FEATURES = {f.name: f for f in FEATURES}


@dataclass(frozen=True)
class Call:
    """Hosts with a `callers` role open connections to `services` on hosts with the `callee` role, when the
    release has it: `feature` on (or `unless` off), version in [since, before), and `proxied` (None: always;
    True/False: only when some host has / no host has the role proxy)."""

    callers: tuple[str, ...]
    callee: str
    services: tuple[str, ...]
    why: str
    source: str
    feature: str = ""
    unless: str = ""
    since: Version = ()
    before: Version = ()
    proxied: bool | None = None

    def active(self, version: Version, features: frozenset[str], proxied: bool) -> bool:
        return ((not self.feature or self.feature in features) and self.unless not in features
                and (not self.since or version >= self.since) and (not self.before or version < self.before)
                and (self.proxied is None or self.proxied == proxied))


CALLS = (
    Call((EVERY_HOST,), "ldap", ("ldap",), "every server reads the directory (389 with StartTLS)",
         "zmsetup.pl 5302-5309; guide '389 ALL'", unless="ldaps"),
    Call((EVERY_HOST,), "ldap", ("ldaps",), "every server reads the directory over LDAPS (636)",
         "zmsetup.pl 5302-5309", feature="ldaps"),
    Call(("ldap",), "ldap", ("ldap",), "replicas pull from the master; multi-master LDAP servers sync each other",
         "zmldapenablereplica 68, 235; zmldapenable-mmr 200", unless="ldaps"),
    Call(("ldap",), "ldap", ("ldaps",), "replicas pull from the master; multi-master LDAP servers sync each other",
         "zmldapenablereplica 68, 235; zmldapenable-mmr 200", feature="ldaps"),
    Call(("mta",), "mailbox", ("lmtp",), "the MTA delivers accepted mail over LMTP (7025)",
         "LdapProvisioning.java 1689; zimbra-attrs.xml 450"),
    Call(("mta",), "mailbox", ("mta_auth",), "the MTA's saslauthd checks passwords on 7073 (8.7 on)",
         "URLUtil.java 84-96; zimbra-attrs.xml 8654", since=(8, 7)),
    Call(("mta",), "mailbox", ("admin",), "before 8.7 the MTA's saslauthd checks passwords on the admin port 7071",
         "URLUtil.java 84-96", before=(8, 7)),
    Call(("proxy",), "mailbox", ("nginx_lookup", "backends_web", "backends_mail"),
         "the proxy looks up the route (7072) and forwards web (8080/8443) and mail (7110/7143/7993/7995)",
         "ProxyConfGen.java 1420-1425; zmproxyconfig 38-42; NginxLookupExtension.java 958-962"),
    Call(("proxy",), "mailbox", ("admin",), "the admin proxy (9071) forwards to the mailboxes' 7071",
         "ProxyConfGen.java 3038-3039", feature="admin_proxy"),
    Call(("proxy",), "mailbox", ("ng_proxy",), "the proxy forwards /zx/ to the NG modules (8742/8743)",
         "ProxyConfGen.java 2204-2205, 912-918", feature="ng"),
    Call(("proxy",), "imapd", ("imapd",), "the proxy forwards IMAP to the remote IMAP daemon (8143/8993)",
         "NginxLookupExtension.java 925-955"),
    Call(("mailbox",), "imapd", ("imapd",), "mailboxes flush the remote IMAP daemon's caches (8143)",
         "ImapConnection.java 772-779; FlushCache.java 270-294"),
    Call(("imapd",), "mailbox", ("admin", "backends_web"),
         "the remote IMAP daemon calls the mailboxes' admin SOAP (7071) and web ports (8080/8443)",
         "ImapServerListener.java 82; AccountUtil.java 510-524"),
    Call(("proxy",), "onlyoffice", ("onlyoffice",), "the proxy forwards to OnlyOffice (7084 docservice, 7085 "
         "spellchecker)", "ProxyConfGen.java 2206-2207, 1128-1161", feature="onlyoffice"),
    Call(("onlyoffice",), "mailbox", ("docs_callback",), "OnlyOffice fetches and saves documents on 7074",
         "zimbra-attrs.xml 9906-9908; jetty.xml.production 308-334", feature="onlyoffice"),
    Call(("proxy",), "docs", ("zimbra_docs",), "the proxy forwards to Zimbra Docs (9980)",
         "nginx.conf.docs.upstream.template 1-4", feature="docs"),
    Call(("proxy", "mailbox"), "memcached", ("memcached",),
         "the proxy caches routes in memcached (11211/tcp); mailboxes use it when zimbraMemcachedClientServerList "
         "is set", "ProxyConfGen.java 755-760; MemcachedConnector.java 62"),
    Call(("mailbox",), "mailbox", ("admin", "backends_web"),
         "mailboxes proxy admin SOAP (7071) and user requests (8080/8443) to the mailbox that holds the account",
         "ProxyTarget.java 75-79; URLUtil.java 264-288", proxied=True),
    Call(("mailbox",), "mailbox", ("admin", "http", "https"),
         "without a proxy, mailboxes reach each other's web ports on 80/443, and admin SOAP on 7071",
         "URLUtil.java 264-288; ProxyTarget.java 75-79", proxied=False),
    Call(("mailbox",), "mailbox", ("convertd",), "mailboxes send attachments to the convertd host (7047)",
         "zmsetup.pl 6018-6028; zimbra-attrs.xml 4118", feature="convertd"),
    Call(("mailbox",), "mailbox", ("xmpp_s2s",), "Zimbra Chat servers talk XMPP server-to-server (5269)",
         "guide '5269 xmpp mailbox'; LC.java 1044", feature="chat"),
    Call(("mailbox",), "mailbox", ("zextras", "zextras_config"), "the NG modules talk between mailboxes "
         "(8735/8736)", "guide '8735', '8736'", feature="ng"),
    Call(("mailbox", "ldap"), "mta", ("smtp",), "mailboxes and LDAP servers send mail (cron jobs, web client)",
         "guide '25 ldap', '25 mbox'"),
    Call(("mailbox",), EVERY_HOST, ("ssh",), "mailboxes run zmrcd over SSH (mail queues, server NIFs, logs)",
         "zimbra-attrs.xml 1845-1847; GetMailQueueInfo.java 54; GetServerNIFs.java 81"),
    Call(("mailbox",), "spell", ("spell",), "mailboxes check spelling on the spell server (7780)",
         "CheckSpelling.java 72; zmsetup.pl 3135-3136"),
    Call((EVERY_HOST,), "logger", ("syslog",), "every server sends syslog to the logger host (514/udp)",
         "zmsyslogsetup 166, 284-286; zmsetup.pl 6959-6960"),
    Call(("mailbox",), "license", ("license_daemon",), "mailboxes ask the license daemon (8081)",
         "zmlicensectl 28, 66", feature="license"),
)

# The catalog services the calls name: the catalog must have each (tests/test_cluster.py checks it).
SERVICES = tuple(dict.fromkeys(s for call in CALLS for s in call.services))


def feature(name: str) -> Feature | None:
    return _FEATURES.get(name)


def version_text(version: Version) -> str:
    return ".".join(map(str, version))


def version_problem(version: Version) -> str:
    """'' for a release the matrix knows, else why not."""
    if len(version) < 2:
        return "a version reads like 10.1, 9.0 or 8.8.15"
    if version < OLDEST_KNOWN or version[:2] > NEWEST_KNOWN:
        return (f"nftc knows the ports of Zimbra {version_text(OLDEST_KNOWN)} to {version_text(NEWEST_KNOWN)}, "
                f"not {version_text(version)}")
    return ""


def feature_problem(name: str, version: Version) -> str:
    """'' when `name` is a feature of `version`, else the message."""
    found = feature(name)
    if found is None:
        return f"unknown feature '{name}'"
    if not found.exists_in(version):
        return f"feature {name} exists in Zimbra {found.span_text()}, not {version_text(version)}"
    return ""


def active_calls(version: Version, features: frozenset[str], proxied: bool) -> tuple[Call, ...]:
    """The calls of a cluster running `version` with `features`; `proxied`: some host has the role proxy."""
    return tuple(call for call in CALLS if call.active(version, features, proxied))


def has_role(roles: frozenset[str], role: str) -> bool:
    """Whether a host with `roles` plays `role` (EVERY_HOST: any Zimbra server, one with a role)."""
    return bool(roles) if role == EVERY_HOST else role in roles


def calls_between(calls: tuple[Call, ...], caller: frozenset[str], callee: frozenset[str]) -> tuple[Call, ...]:
    """The calls a host with roles `caller` makes to a host with roles `callee`."""
    return tuple(c for c in calls if has_role(callee, c.callee) and any(has_role(caller, r) for r in c.callers))
