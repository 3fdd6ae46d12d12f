"""DNS failover backends: repoint clients from a primary server to a secondary and back."""
