"""nftc: compile Zimbra-aware firewall policies (.zfw) to one atomic nftables ruleset."""

__version__ = "0.1.0"
