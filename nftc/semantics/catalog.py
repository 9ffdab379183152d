"""The built-in catalog of Zimbra ports: one entry per named service, and the `zimbra.*` groups.

Facts follow Zimbra's own public sources, none of which is part of this repository: the port tables of the
install guides (github.com/Zimbra/installguides, `VERSION/single.html` and `multi.html`), attribute defaults
(Zimbra/zm-mailbox: `store/conf/attrs/zimbra-attrs.xml`, `common/src/java/com/zimbra/common/localconfig/LC.java`),
the listener templates (Zimbra/zm-postfix: `conf/postfix/master.cf.in`; Zimbra/zm-amavis: `conf/amavisd.conf.in`)
and the control scripts (Zimbra/zm-core-utils: `src/bin/zmmemcachedctl`, `src/libexec/zmproxyconfig`,
`src/libexec/zmconfigd`), checked for issue 11 in docs/research/zimbra-roles.md (section 2: where each listener
binds; section 3: the corrections). Each entry also records what the source article (a Spanish how-to with a ufw recipe,
not in this repository either) says about the port, and where it is wrong; `nftc catalog PORT` prints both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ..language.model import Group, Name, PortRange, Service
from ..language.text import columns
from . import roles as zimbra_roles

EXPOSURES = ("public", "admin", "cluster", "localhost")
ROLES = zimbra_roles.ROLES + ("all",)  # the role matrix's roles (nftc.semantics.roles), or every Zimbra server
BINDS = ("all", "loopback")  # where Zimbra's listener binds by default: every address, or 127.0.0.1/::1 only
NOT_IN_ARTICLE = "not in the article"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class CatalogEntry:
    """One Zimbra service: its ports, who listens and where it binds, who may reach it, and what the article says
    about it."""

    name: str
    ports: tuple[PortRange, ...]
    description: str
    roles: tuple[str, ...]
    versions: str
    exposure: str
    default_on: bool
    article: str
    bind: str  # where Zimbra binds it by default (BINDS); the lab binds its listener there too

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"catalog entry name {self.name!r} is not [a-z][a-z0-9_]*")
        if self.exposure not in EXPOSURES:
            raise ValueError(f"catalog entry {self.name}: unknown exposure {self.exposure!r}")
        if self.bind not in BINDS:
            raise ValueError(f"catalog entry {self.name}: unknown bind {self.bind!r}")
        if not self.ports or not set(self.roles) <= set(ROLES):
            raise ValueError(f"catalog entry {self.name}: needs ports and known roles")

    @property
    def service(self) -> Service:
        return Service(self.name, self.ports, self.description)


def _tcp(*ports: int) -> tuple[PortRange, ...]:
    return tuple(PortRange("tcp", port, port) for port in ports)


def _udp(*ports: int) -> tuple[PortRange, ...]:
    return tuple(PortRange("udp", port, port) for port in ports)


def _entry(name: str, ports: tuple[PortRange, ...], exposure: str, roles: str, versions: str, description: str,
           article: str = "", default_on: bool = True, bind: str = "all") -> CatalogEntry:
    return CatalogEntry(name, ports, description, tuple(roles.split()), versions, exposure, default_on, article, bind)


def _local(name: str, ports: tuple[PortRange, ...], roles: str, versions: str, description: str,
           article: str = "", default_on: bool = True) -> CatalogEntry:
    """A listener Zimbra binds to loopback only (research section 2): nothing off the host can reach it."""
    return _entry(name, ports, "localhost", roles, versions, description, article, default_on, bind="loopback")


_PUBLIC_COUNT = "the article promises 'up to 12' public ports and lists 11; Zimbra's external list has 13"
_CHAT_ONLY = "listed without saying it exists only on 8.7.6-9.x (Zimbra Chat); Zimbra 10 removes it"
_ZEXTRAS_ONLY = "right, but it does not say this exists only on 8.8-9.x with the Zextras/NG modules"
_LAN_OPEN = "its `ufw allow from 192.168.1.0/24` opens this (and every other port) to the whole LAN"

# The data table: one entry per service, in port order.
_TABLE = (
    _entry("ssh", _tcp(22), "admin", "all", "all",
           "SSH: management from admin networks; mailbox servers also reach every peer on it (zmrcd: mail queues, "
           "server NIFs)",
           NOT_IN_ARTICLE),
    _entry("smtp", _tcp(25), "public", "mta", "all",
           "SMTP: inbound mail from the internet (Postfix behind postscreen); LDAP and mailbox servers also send here"),
    _local("dnscache", _tcp(53) + _udp(53), "all", "8.5+",
           "Local DNS cache (zimbra-dnscache, unbound on 127.0.0.1) answering this host only",
           NOT_IN_ARTICLE),
    _entry("http", _tcp(80), "public", "proxy mailbox", "all",
           "HTTP web client (proxy; the mailbox itself when there is no proxy)"),
    _entry("pop3", _tcp(110), "public", "proxy mailbox", "all",
           "POP3 with STARTTLS (proxy; the mailbox itself when there is no proxy)"),
    _entry("imap", _tcp(143), "public", "proxy mailbox", "all",
           "IMAP with STARTTLS (proxy; the mailbox itself when there is no proxy)"),
    _entry("ldap", _tcp(389), "cluster", "ldap", "all",
           "LDAP directory (StartTLS) on the address of the LDAP host's name: every Zimbra server reads it, "
           "replicas pull from the master",
           f"right about what it is and that it is dangerous open; but {_LAN_OPEN}"),
    _entry("https", _tcp(443), "public", "proxy mailbox", "all",
           "HTTPS web client, ActiveSync and SOAP (proxy; the mailbox itself when there is no proxy)"),
    _entry("smtps", _tcp(465), "public", "mta", "all",
           "SMTPS: implicit-TLS message submission by users (login required)",
           f"omitted from the article's public list ({_PUBLIC_COUNT}); it appears only in the 14-port list and "
           "the ufw profile, unexplained"),
    _entry("syslog", _udp(514), "cluster", "logger", "all",
           "syslog over UDP: every server sends its logs to the logger host (a mailbox host; UDP reception is "
           "turned on there by hand)",
           NOT_IN_ARTICLE),
    _entry("submission", _tcp(587), "public", "mta", "all",
           "Message submission with STARTTLS by users (login required)",
           "calls it a vague 'connection entry port': it is authenticated message submission"),
    _entry("ldaps", _tcp(636), "cluster", "ldap", "all",
           "LDAP over TLS: every Zimbra server, when LDAPS is used instead of StartTLS on 389",
           f"right; but {_LAN_OPEN}"),
    _entry("imaps", _tcp(993), "public", "proxy mailbox", "all",
           "IMAP over TLS (proxy; the mailbox itself when there is no proxy)"),
    _entry("pop3s", _tcp(995), "public", "proxy mailbox", "all",
           "POP3 over TLS (proxy; the mailbox itself when there is no proxy)"),
    _local("clamd", _tcp(3310), "mta", "all",
           "ClamAV daemon, bound to localhost (zimbraClamAVBindAddress); amavis uses its unix socket",
           "right: ClamAV, local only (it binds to localhost by default; no other server calls it)"),
    _entry("certauth", _tcp(3443), "public", "proxy", "7.1.1+",
           "Client-certificate login through the proxy (zimbraMailSSLProxyClientCertPort), optional; checks the "
           "certificate and redirects to 443 or the admin port",
           f"omitted from the article's public list ({_PUBLIC_COUNT}); it appears only in the 14-port list and "
           "the ufw profile, unexplained; it is optional and not a Zextras port",
           default_on=False),
    _entry("xmpp", _tcp(5222), "public", "mailbox", "8.7.6-9.x",
           "XMPP client connections with STARTTLS (Zimbra Chat)",
           _CHAT_ONLY),
    _entry("xmpps", _tcp(5223), "public", "mailbox", "8.7.6-9.x",
           "XMPP client connections over TLS (Zimbra Chat, legacy SSL port); off by default",
           _CHAT_ONLY, default_on=False),
    _entry("xmpp_s2s", _tcp(5269), "cluster", "mailbox", "8.7.6-9.x",
           "XMPP server-to-server traffic between mailboxes of one install (Zimbra Chat)",
           "right, but it does not say this exists only on 8.7.6-9.x"),
    _entry("lmtp", _tcp(7025), "cluster", "mailbox", "all",
           "LMTP: the MTA delivers accepted mail into the mailbox store"),
    _local("milter", _tcp(7026), "mta", "7.0+",
           "Zimbra milter server (zimbraMilterBindPort, on 127.0.0.1) queried by the local Postfix; off by default",
           NOT_IN_ARTICLE, default_on=False),
    _entry("convertd", _tcp(7047), "cluster", "mailbox", "6.0+ NE",
           "Attachment conversion daemon (convertd, Network Edition) for HTML previews; listens on every address "
           "and the other mailboxes call the first convertd host (zimbraConvertdURL is global)",
           default_on=False),
    _entry("admin", _tcp(7071), "cluster", "mailbox", "all",
           "Admin console and admin SOAP on mailbox servers: other mailboxes, the proxy (9071) and admin networks "
           "connect; never the world",
           "lists it as internal, but its ufw profile and its 14-port 'multi-server' list open it to the world "
           "(every source); Zimbra's table says internal: open it to cluster peers and admin networks only"),
    _entry("nginx_lookup", _tcp(7072), "cluster", "mailbox", "all",
           "NGINX lookup (route) handler: the proxy asks a mailbox which backend serves a user"),
    _entry("mta_auth", _tcp(7073), "cluster", "mailbox", "8.7+",
           "MTA authentication: the MTA's SASL checks user passwords against a mailbox (before 8.7: on 7071)"),
    _entry("docs_callback", _tcp(7074), "cluster", "mailbox", "10.0+",
           "Document editing callback (mailboxd, TLS) on every 10.x mailbox: the OnlyOffice host fetches and "
           "saves documents here",
           NOT_IN_ARTICLE),
    _entry("onlyoffice", _tcp(7084, 7085), "cluster", "onlyoffice", "10.0+ NE",
           "OnlyOffice document server (7084 docservice, 7085 spellchecker, TLS) on the onlyoffice host, reached "
           "by the proxies",
           NOT_IN_ARTICLE, default_on=False),
    _entry("backends_mail", _tcp(7110, 7143, 7993, 7995), "cluster", "mailbox", "all",
           "Mailbox POP3/IMAP behind the proxy (7110 POP3, 7143 IMAP, 7993 IMAPS, 7995 POP3S): only proxies connect",
           "right, but these are reached by proxies on other hosts, not only locally"),
    _local("zmconfigd", _tcp(7171), "all", "all",
           "zmconfigd: rewrites configuration files and restarts services for local Zimbra tools"),
    _local("mysql", _tcp(7306), "mailbox", "all",
           "MariaDB/MySQL with mailbox metadata, bound to 127.0.0.1, used by the local mailbox server only"),
    _entry("spell", _tcp(7780), "cluster", "spell", "all",
           "Spell checker (Apache with aspell) queried by mailbox servers"),
    _entry("backends_web", _tcp(8080, 8443), "cluster", "mailbox", "all",
           "Mailbox HTTP/HTTPS (Jetty) behind the proxy: proxies and other mailboxes connect",
           "right, but these are reached by proxies and other mailboxes, not only locally"),
    _entry("license_daemon", _tcp(8081), "cluster", "license", "10.1+ NE",
           "License daemon (zmlicensectl, Network Edition) on the one license host, asked by the mailboxes",
           NOT_IN_ARTICLE, default_on=False),
    _entry("imapd", _tcp(8143, 8993), "cluster", "imapd", "8.8.1+",
           "Remote IMAP daemon (8143 IMAP, 8993 IMAPS), off by default: proxies forward IMAP to it and mailboxes "
           "flush its caches (8143)",
           NOT_IN_ARTICLE, default_on=False),
    _local("opendkim", _tcp(8465), "mta", "all",
           "OpenDKIM milter signing and verifying DKIM, called by the Postfix listener on 10030",
           NOT_IN_ARTICLE),
    _entry("zextras", _tcp(8735), "cluster", "mailbox", "8.8-9.x",
           "Zextras/NG modules mailbox-to-mailbox communication (Network Edition)",
           _ZEXTRAS_ONLY),
    _entry("zextras_config", _tcp(8736), "cluster", "mailbox", "8.8-9.x",
           "Zextras/NG modules distributed configuration service between mailboxes (Network Edition)",
           _ZEXTRAS_ONLY),
    _entry("ng_proxy", _tcp(8742, 8743), "cluster", "mailbox", "8.8.10-9.x",
           "NG modules behind the proxy (/zx/: 8742 HTTP, 8743 HTTPS): the proxies forward to the mailboxes",
           NOT_IN_ARTICLE, default_on=False),
    _entry("admin_proxy", _tcp(9071), "admin", "proxy", "8.0+",
           "Admin console through the proxy (zimbraAdminProxyPort), forwarding to mailbox 7071; off by default",
           "lists it as a public port and its ufw profile opens it to everyone; it is off by default and belongs "
           "to admin networks only, never the world",
           default_on=False),
    _entry("certauth_backend", _tcp(9443), "cluster", "mailbox", "7.1+",
           "Mailbox HTTPS for client-certificate login (zimbraMailSSLClientCertPort), for installs without a proxy; "
           "off unless that login is on",
           NOT_IN_ARTICLE, default_on=False),
    _entry("zimbra_docs", _tcp(9980), "cluster", "docs", "8.8.9-9.x",
           "Zimbra Docs (LibreOffice Online) on the docs host, reached by the proxies",
           NOT_IN_ARTICLE, default_on=False),
    _local("amavis", _tcp(10024), "mta", "all",
           "amavis content filter, default policy: Postfix hands inbound mail here for virus and spam checks"),
    _local("postfix_return", _tcp(10025), "mta", "all",
           "Postfix re-injection listener: amavis hands scanned mail back here (syslog postfix/amavisd)",
           "wrong: calls it Amavis talking to OpenDKIM; it is Postfix re-injection after amavis"),
    _local("amavis_originating", _tcp(10026), "mta", "all",
           "amavis ORIGINATING policy listener: mail submitted by local users, then on to DKIM signing on 10030",
           "misleading: says it is for configuring Amavis policies; it is the amavis listener for outgoing mail "
           "(ORIGINATING policy bank)"),
    _local("postjournal", _tcp(10027), "mta", "all",
           "postjournal proxy filter, used by the SMTP listeners when postjournal_enabled is set",
           NOT_IN_ARTICLE),
    _local("postfix_reinject", _tcp(10028), "mta", "all",
           "Postfix re-inject listener (syslog postfix/reinject), localhost clients only",
           "wrong: calls it Amavis talking to a content filter; it is a Postfix re-inject listener"),
    _local("postfix_archive", _tcp(10029), "mta", "all",
           "Postfix listener receiving archive copies (syslog postfix/archive), localhost clients only",
           "vague: 'to access Postfix files'; it is the Postfix listener for archiving"),
    _local("postfix_dkim", _tcp(10030), "mta", "all",
           "Postfix listener running the OpenDKIM milter (8465) on outgoing mail, then on to amavis 10032",
           NOT_IN_ARTICLE),
    _local("cbpolicyd", _tcp(10031), "mta", "8.5+",
           "cbpolicyd (Cluebringer) Postfix policy daemon; off by default (configured in LDAP from 8.5, older "
           "releases had it in localconfig)",
           NOT_IN_ARTICLE, default_on=False),
    _local("amavis_post_dkim", _tcp(10032), "mta", "all",
           "amavis ORIGINATING_POST listener: outgoing mail after DKIM signing, spam-checked, then back to 10025",
           "roughly right (SpamAssassin), but SpamAssassin runs inside amavis: this is the post-DKIM amavis listener"),
    _local("logger", _tcp(10663), "logger", "all",
           "Zimbra logger service listener on the logger host, local only",
           NOT_IN_ARTICLE),
    _entry("memcached", _tcp(11211), "cluster", "memcached", "all",
           "memcached over TCP only, reached by proxies and mailboxes; nftc always drops UDP 11211 "
           "(memcrashed amplification, CVE-2018-1000115)",
           "only warns about memcrashed; does not say Zimbra needs TCP only (-U 0 since 8.8.9), that UDP 11211 "
           "must be dropped, or that proxies and mailboxes on other hosts must reach it"),
    _local("amavis_services", _tcp(23232), "mta", "all",
           "amavis-services message forwarder (ZeroMQ) publishing amavisd status to local monitors"),
    _local("amavis_snmp", _tcp(23233), "mta", "all",
           "amavis-services snmp-responder (ZeroMQ) answering local SNMP/monitoring queries"),
)


def _first_port(e: CatalogEntry) -> tuple[int, str]:
    return (e.ports[0].first, e.name)


ENTRIES: tuple[CatalogEntry, ...] = tuple(sorted(_TABLE, key=_first_port))
_BY_NAME = {e.name: e for e in ENTRIES}


def _names_where(exposures: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(e.name for e in ENTRIES if e.exposure in exposures)


def _group(name: str, members: tuple[str, ...], description: str) -> Group:
    return Group(name, tuple(Name(member) for member in members), description)


GROUPS: tuple[Group, ...] = (
    _group("zimbra.public", ("smtp", "http", "pop3", "imap", "https", "smtps", "submission", "imaps", "pop3s"),
          "Mail and web ports every install faces the internet with (not 3443, chat or the admin console)"),
    _group("zimbra.chat", ("xmpp", "xmpps"), "Zimbra Chat client ports, 8.7.6-9.x only"),
    _group("zimbra.admin", ("admin", "admin_proxy"), "Admin console ports: admin networks only, never the world"),
    _group("zimbra.internal", _names_where(("cluster", "localhost")),
          "Every port that is cluster-only or local-only, memcached and 7071 included"),
    _group("zimbra.multiserver",
          ("smtp", "http", "pop3", "imap", "https", "smtps", "submission", "imaps", "pop3s", "certauth", "xmpp",
           "xmpps", "admin", "admin_proxy"),
          "The article's 14 'multi-server' ports, kept for comparison: the public list plus the admin ports "
          "7071 and 9071, not real server-to-server traffic (use the role groups)"),
    _group("zimbra.mta", ("smtp",),
          "What other servers reach on an MTA: 25 (LDAP, mailbox); ClamAV 3310 binds to localhost"),
    _group("zimbra.mailbox", ("lmtp", "admin", "nginx_lookup", "mta_auth", "backends_mail", "backends_web"),
          "What other servers reach on a mailbox: MTA -> 7025 7073; proxy -> 7072 7110 7143 7993 7995 8080 8443; "
          "mailboxes -> 7071 8080 8443 (add xmpp_s2s, zextras, zextras_config on 8.8-9.x)"),
    _group("zimbra.proxy", ("http", "pop3", "imap", "https", "imaps", "pop3s"),
          "What reaches a proxy: no server-to-server traffic in Zimbra's matrix, so the client web and mail ports"),
    _group("zimbra.ldap", ("ldap", "ldaps"), "What every server reaches on an LDAP server: 389 (636 with LDAPS)"),
    _group("zimbra.memcached", ("memcached",), "What proxies and mailboxes reach on a memcached server: 11211/tcp"),
    _group("zimbra.logger", ("syslog",), "What every server sends to the logger host: syslog 514/udp"),
    _group("zimbra.spell", ("spell",), "What mailbox servers reach on a spell server: 7780"),
)
_GROUPS_BY_NAME = {g.name: g for g in GROUPS}


def entry(name: str) -> CatalogEntry | None:
    return _BY_NAME.get(name)


def group(name: str) -> Group | None:
    return _GROUPS_BY_NAME.get(name)


def entries_for_port(port: int) -> tuple[CatalogEntry, ...]:
    """Every entry with a range that includes `port`, whatever the protocol."""
    return tuple(e for e in ENTRIES if any(r.first <= port <= r.last for r in e.ports))


def bind_of(protocol: str, port: int) -> str:
    """Where Zimbra binds the listener of `port`/`protocol`: the bind of the entry that owns it ("all" for a port
    no entry has: a policy's own service). The lab binds its listener there, so it measures real exposure."""
    owner = next((e for e in ENTRIES if any(r.protocol == protocol and r.first <= port <= r.last for r in e.ports)),
                 None)
    return owner.bind if owner else "all"


def services() -> tuple[Service, ...]:
    return tuple(e.service for e in ENTRIES)


def internal_entries() -> tuple[CatalogEntry, ...]:
    return tuple(e for e in ENTRIES if e.exposure in ("cluster", "localhost"))


def group_entries(name: str) -> tuple[CatalogEntry, ...]:
    """The entries a catalog group names; empty for an unknown group."""
    found = group(name)
    return tuple(_BY_NAME[m.name] for m in found.members) if found else ()


def groups_containing(name: str) -> tuple[str, ...]:
    return tuple(g.name for g in GROUPS if Name(name) in g.members)


def format_ports(ports: Iterable[PortRange]) -> str:
    """`7110,7143/tcp`, `53/tcp 53/udp`: ports grouped per protocol, in order."""
    by_protocol: dict[str, list[str]] = {}
    for r in ports:
        number = str(r.first) if r.first == r.last else f"{r.first}-{r.last}"
        by_protocol.setdefault(r.protocol, []).append(number)
    return " ".join(f"{','.join(numbers)}/{protocol}" for protocol, numbers in by_protocol.items())


_TABLE_HEADER = ("PORTS", "NAME", "EXPOSURE", "ROLES", "VERSIONS", "DESCRIPTION")


def _row(e: CatalogEntry) -> tuple[str, ...]:
    exposure = e.exposure if e.default_on else f"{e.exposure} (off)"
    return (format_ports(e.ports), e.name, exposure, ",".join(e.roles), e.versions, e.description)


def format_table(entries: Iterable[CatalogEntry]) -> str:
    """A plain-text table, columns aligned, for `nftc catalog`."""
    return columns([_TABLE_HEADER, *(_row(e) for e in entries)])


def format_groups(groups: Iterable[Group]) -> str:
    """A plain-text table of the groups, for `nftc catalog --groups`: name, description, ports (last: the
    internal group's are a long line)."""
    rows = [(g.name, g.description, format_ports(r for e in group_entries(g.name) for r in e.ports)) for g in groups]
    return columns([("GROUP", "DESCRIPTION", "PORTS"), *rows])


_BIND_TEXT = {"all": "all addresses (Zimbra's default)", "loopback": "loopback only, 127.0.0.1/::1 (Zimbra's default)"}


def format_entry(e: CatalogEntry) -> str:
    """A multi-line explanation of one entry, for `nftc catalog 7071`."""
    fields = (
        ("ports", format_ports(e.ports)),
        ("exposure", e.exposure + ("" if e.default_on else ", off by default")),
        ("bind", _BIND_TEXT[e.bind]),
        ("roles", ", ".join(e.roles)),
        ("versions", e.versions),
        ("groups", ", ".join(groups_containing(e.name)) or "none"),
        ("article", e.article or "right"),
    )
    return "\n".join([f"{e.name}: {e.description}", *(f"  {key + ':':<10}{value}" for key, value in fields)])
