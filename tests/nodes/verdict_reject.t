reject
