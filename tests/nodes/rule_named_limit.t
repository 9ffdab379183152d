limit name "limit_r2" goto target comment "site.zfw:4 r2"
