"""Push notifications: devices, the transactional outbox of finished answers, and the FCM dispatcher."""
