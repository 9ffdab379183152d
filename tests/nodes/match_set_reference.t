ip saddr @dyn_admins_v4
