iifname vmap @zones_iface
