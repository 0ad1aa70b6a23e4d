-- Undo schema version 2: worker rows no longer list their types.
ALTER TABLE pgjobd.workers DROP COLUMN types;
