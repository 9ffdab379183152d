ip saddr vmap @zones_v4
