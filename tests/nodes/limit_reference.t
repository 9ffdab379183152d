limit name "limit_r2"
