{
  job_b: { apiVersion: 'batch/v1', kind: 'Job', metadata: { generateName: 'migrate-b-' } },
  job_a: { apiVersion: 'batch/v1', kind: 'Job', metadata: { generateName: 'migrate-a-' } },
  named: { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'named' } },
}
