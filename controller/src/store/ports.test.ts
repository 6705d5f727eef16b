import { clusterStoreContract } from '../cluster/cluster-store.contract.js';
import { jobsStoreContract } from '../jobs/jobs-store.contract.js';
import { healthStoreContract } from '../predict/health-store.contract.js';
import { rolloutStoreContract } from '../rollouts/rollout-store.contract.js';
import { onEveryDatabase } from './database-fixtures.js';

// every port's contract on the SQLite file and on PostgreSQL (FleetStore's and TelemetryLog's in their own files)
onEveryDatabase(jobsStoreContract);
onEveryDatabase(rolloutStoreContract);
onEveryDatabase(healthStoreContract);
onEveryDatabase(clusterStoreContract);
