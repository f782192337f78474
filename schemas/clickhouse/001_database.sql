-- ringback's database. Statements are applied in file order at every start; each is idempotent.
-- {on_cluster} is replaced by "ON CLUSTER <name>" when clickhouse_cluster is set, else removed.
CREATE DATABASE IF NOT EXISTS ringback {on_cluster};
